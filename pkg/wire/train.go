package wire

import "time"

// Release-train paths.
const (
	// PathTrains: GET → []Train.
	PathTrains = "/api/v1/trains"
	// PathTrain + {line}: GET → Train; PUT TrainSetRequest → Train;
	// + {line}/hold|resume|skip: POST TrainActionRequest → Train;
	// + {line}/expedite: POST TrainExpediteRequest → Train.
	PathTrain = "/api/v1/trains/"
	// PathReleaseReject is PathReleases + "/{id}/reject": POST
	// ReleaseRejectRequest → Release.
	PathReleaseReject = "/reject"
)

// TrainSetRequest sets a kernel line's release train.
type TrainSetRequest struct {
	Staging            []string `json:"staging"`
	StagingSoakSeconds int64    `json:"staging_soak_seconds"`
	ControlSoakSeconds int64    `json:"control_soak_seconds"`
	EdgeCycleSeconds   int64    `json:"edge_cycle_seconds"`
	// Departure is "WEEKDAY HH:MM ZONE", e.g. "Tue 09:00 UTC".
	Departure string `json:"departure"`
	// Freezes are "FIRST..LAST" dates (inclusive, in the departure's
	// zone), in order.
	Freezes []string `json:"freezes,omitempty"`
}

// TrainActionRequest holds, resumes or skips (the next departure of) a
// train.
type TrainActionRequest struct {
	Reason string `json:"reason"`
}

// TrainExpediteRequest departs a validated release now.
type TrainExpediteRequest struct {
	Release string `json:"release"`
	Reason  string `json:"reason"`
}

// ReleaseRejectRequest rejects a release for its line.
type ReleaseRejectRequest struct {
	Reason string `json:"reason"`
}

// TrainFreeze is a freeze window of a train.
type TrainFreeze struct {
	Spec string    `json:"spec"`
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Active marks the window in force now.
	Active bool `json:"active,omitempty"`
}

// TrainRelease is a release of a train's line with its state.
type TrainRelease struct {
	ID          string `json:"id"`
	Kernel      string `json:"kernel"`
	State       string `json:"state"`
	StateReason string `json:"state_reason,omitempty"`
}

// Train is a kernel line's release train as krollctl train show prints
// it.
type Train struct {
	Line               string        `json:"line"`
	Staging            []string      `json:"staging"`
	StagingSoakSeconds int64         `json:"staging_soak_seconds"`
	ControlSoakSeconds int64         `json:"control_soak_seconds"`
	EdgeCycleSeconds   int64         `json:"edge_cycle_seconds"`
	Departure          string        `json:"departure"`
	NextDeparture      time.Time     `json:"next_departure"`
	Freezes            []TrainFreeze `json:"freezes,omitempty"`
	Held               bool          `json:"held,omitempty"`
	HoldReason         string        `json:"hold_reason,omitempty"`
	SkipNext           bool          `json:"skip_next,omitempty"`
	SkipReason         string        `json:"skip_reason,omitempty"`
	// EdgeRelease is what the last edge train took (EdgeRollout, at
	// Departed); ControlRelease what the control tier took.
	EdgeRelease    string    `json:"edge_release,omitempty"`
	EdgeRollout    string    `json:"edge_rollout,omitempty"`
	Departed       time.Time `json:"departed,omitzero"`
	ControlRelease string    `json:"control_release,omitempty"`
	// Waiting is the newest validated release not yet on the edge: it
	// departs next.
	Waiting string `json:"waiting,omitempty"`
	// StagingBlocked says why no candidate can start staging now ("":
	// staging is ready).
	StagingBlocked string `json:"staging_blocked,omitempty"`
	// Attention lists what the train cannot decide and leaves alone
	// until an operator acts: releases it cannot order against others.
	Attention []string `json:"attention,omitempty"`
	// Releases are the line's releases that are not done, newest first.
	Releases []TrainRelease `json:"releases,omitempty"`
	// Events are the train's latest events, oldest first.
	Events []Event `json:"events,omitempty"`
}
