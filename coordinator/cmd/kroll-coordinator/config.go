package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kroll-dev/kroll/pkg/tomlfile"

	"github.com/kroll-dev/kroll/coordinator/api"
	"github.com/kroll-dev/kroll/coordinator/feed"
	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/signing"
)

// fileConfig is the TOML configuration file (--config).
type fileConfig struct {
	Slots struct {
		// Lease is how long a grant or renewal is good for.
		Lease tomlfile.Duration `toml:"lease"`
		// RebootDeadline is how long a silent holder keeps its slot before
		// it is marked lost.
		RebootDeadline tomlfile.Duration `toml:"reboot_deadline"`
		// AliveWithin is how recent a heartbeat must be for "alive".
		AliveWithin tomlfile.Duration `toml:"alive_within"`
		// HeartbeatInterval is what agents are told to use.
		HeartbeatInterval tomlfile.Duration `toml:"heartbeat_interval"`
	} `toml:"slots"`
	Hosts struct {
		// ExpireAfter is how long a host not holding a slot may stay
		// silent before it is removed.
		ExpireAfter tomlfile.Duration `toml:"expire_after"`
		// MaxPerDC caps the hosts registered in one datacenter.
		MaxPerDC int `toml:"max_per_dc"`
	} `toml:"hosts"`
	FleetLock struct {
		// FreshWithin is how recently a FleetLock-only host must have
		// called pre-reboot or steady-state to count as serving.
		FreshWithin tomlfile.Duration `toml:"fresh_within"`
		// AllowUnauthenticatedFrom are the source networks (CIDRs) whose
		// FleetLock requests need no credentials (stock Zincati).
		AllowUnauthenticatedFrom []string `toml:"allow_unauthenticated_from"`
		// Groups limits those requests to these groups (datacenters).
		Groups []string `toml:"groups"`
	} `toml:"fleetlock"`
	Auth struct {
		// PeerTokenFile holds the token nodes use to forward commands to
		// the leader (role peer), the same on every node.
		PeerTokenFile string `toml:"peer_token_file"`
		Tokens        []struct {
			Name   string `toml:"name"`
			Role   string `toml:"role"`
			SHA256 string `toml:"sha256"`
		} `toml:"tokens"`
	} `toml:"auth"`
	Releases struct {
		// TrustedKeys are the public keys (PEM files) whose signatures
		// on release manifests the coordinator accepts.
		TrustedKeys []string `toml:"trusted_keys"`
	} `toml:"releases"`
	Policies struct {
		// TrustedKeys are the public keys (PEM files) whose signatures
		// on mitigation policies the coordinator accepts.
		TrustedKeys []string `toml:"trusted_keys"`
	} `toml:"policies"`
	// Feeds are the build feeds the leader polls ([[feed]]; see
	// coordinator/feed).
	Feeds []feedConfig `toml:"feed"`
	// API bounds the load a node takes on (api.Admission).
	API struct {
		HeartbeatConcurrency int               `toml:"heartbeat_concurrency"`
		HeartbeatQueue       int               `toml:"heartbeat_queue"`
		HeartbeatQueueWait   tomlfile.Duration `toml:"heartbeat_queue_wait"`
		PriorityConcurrency  int               `toml:"priority_concurrency"`
		PriorityQueue        int               `toml:"priority_queue"`
		PriorityQueueWait    tomlfile.Duration `toml:"priority_queue_wait"`
		RetryAfter           tomlfile.Duration `toml:"retry_after"`
		SchedLatencyTarget   tomlfile.Duration `toml:"sched_latency_target"`
		ShedOnPressure       *bool             `toml:"shed_on_pressure"`
	} `toml:"api"`
}

// feedConfig is one [[feed]] (see feed.Config).
type feedConfig struct {
	Name      string            `toml:"name"`
	Kind      string            `toml:"kind"`
	URL       string            `toml:"url"`
	Suite     string            `toml:"suite"`
	Component string            `toml:"component"`
	Arch      string            `toml:"arch"`
	Package   string            `toml:"package"`
	Line      string            `toml:"line"`
	Interval  tomlfile.Duration `toml:"interval"`
	Timeout   tomlfile.Duration `toml:"timeout"`
	CAFile    string            `toml:"ca_file"`
	// Keys are public keys (PEM files) among releases.trusted_keys: the
	// feed accepts only their signatures (default: all of them).
	Keys []string `toml:"keys"`
}

// settings are the resolved runtime settings.
type settings struct {
	timing            fsm.Timing
	heartbeatInterval time.Duration
	auth              *api.Auth
	peerToken         string
	releaseKeys       []ed25519.PublicKey
	policyKeys        []ed25519.PublicKey
	admission         api.Admission
	fleetLock         api.FleetLockAccess
	feeds             []feed.Config
}

func loadConfig(path string) (settings, error) {
	s := settings{
		timing: fsm.Timing{Lease: time.Minute, RebootDeadline: 20 * time.Minute, AliveWithin: 45 * time.Second,
			FleetLockFresh: fsm.DefaultFleetLockFresh, ExpireAfter: fsm.DefaultExpireAfter, MaxHostsPerDC: fsm.DefaultMaxHostsPerDC},
		heartbeatInterval: 10 * time.Second,
		auth:              &api.Auth{},
	}
	if path == "" {
		return s, nil
	}
	var fc fileConfig
	if err := tomlfile.Decode(path, &fc); err != nil {
		return s, err
	}
	for _, pair := range []struct {
		dst *time.Duration
		src tomlfile.Duration
	}{{&s.timing.Lease, fc.Slots.Lease}, {&s.timing.RebootDeadline, fc.Slots.RebootDeadline}, {&s.timing.AliveWithin, fc.Slots.AliveWithin}, {&s.heartbeatInterval, fc.Slots.HeartbeatInterval},
		{&s.timing.FleetLockFresh, fc.FleetLock.FreshWithin}, {&s.timing.ExpireAfter, fc.Hosts.ExpireAfter}} {
		if pair.src.Duration != 0 {
			*pair.dst = pair.src.Duration
		}
	}
	switch {
	case fc.Hosts.MaxPerDC < 0:
		return s, fmt.Errorf("config %s: hosts.max_per_dc (%d) must not be negative", path, fc.Hosts.MaxPerDC)
	case fc.Hosts.MaxPerDC > 0:
		s.timing.MaxHostsPerDC = fc.Hosts.MaxPerDC
	}
	a := fc.API
	s.admission = api.Admission{HeartbeatConcurrency: a.HeartbeatConcurrency, HeartbeatQueue: a.HeartbeatQueue, HeartbeatQueueWait: a.HeartbeatQueueWait.Duration,
		PriorityConcurrency: a.PriorityConcurrency, PriorityQueue: a.PriorityQueue, PriorityQueueWait: a.PriorityQueueWait.Duration, RetryAfter: a.RetryAfter.Duration,
		PressureTarget: a.SchedLatencyTarget.Duration}
	if a.ShedOnPressure != nil && !*a.ShedOnPressure {
		s.admission.PressureTarget = -1 // never
	}
	switch {
	case a.HeartbeatConcurrency < 0 || a.PriorityConcurrency < 0:
		return s, fmt.Errorf("config %s: api.heartbeat_concurrency and api.priority_concurrency must not be negative", path)
	case a.HeartbeatQueue < -1 || a.PriorityQueue < -1:
		return s, fmt.Errorf("config %s: api.heartbeat_queue and api.priority_queue: -1 (no queue), 0 (the default) or more", path)
	case a.RetryAfter.Duration > 0 && a.RetryAfter.Duration < time.Second:
		return s, fmt.Errorf("config %s: api.retry_after (%s) must be at least 1s (Retry-After counts whole seconds)", path, a.RetryAfter.Duration)
	}
	// A heartbeat shed by load (429) comes back after at most 1.5 times
	// the Retry-After, then waits for the agent's next beat: the host must
	// be heard again before alive_within, or load would mark it silent.
	retryAfter := s.admission.RetryAfter
	if retryAfter == 0 {
		retryAfter = s.heartbeatInterval
	}
	if worst := retryAfter*3/2 + s.heartbeatInterval; s.timing.AliveWithin <= worst {
		return s, fmt.Errorf("config %s: slots.alive_within (%s) must be longer than 1.5 × api.retry_after (%s; default the heartbeat interval) + slots.heartbeat_interval (%s) = %s: a host shed by load would be marked silent",
			path, s.timing.AliveWithin, retryAfter, s.heartbeatInterval, worst)
	}
	if s.timing.RebootDeadline < s.timing.Lease {
		return s, fmt.Errorf("config %s: slots.reboot_deadline (%s) must not be shorter than slots.lease (%s)", path, s.timing.RebootDeadline, s.timing.Lease)
	}
	var errs []error
	for i, path := range fc.Releases.TrustedKeys {
		k, err := signing.LoadPublicKey(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("releases.trusted_keys[%d]: %w", i, err))
			continue
		}
		s.releaseKeys = append(s.releaseKeys, k)
	}
	for i, path := range fc.Policies.TrustedKeys {
		k, err := signing.LoadPublicKey(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("policies.trusted_keys[%d]: %w", i, err))
			continue
		}
		s.policyKeys = append(s.policyKeys, k)
	}
	feeds, err := loadFeeds(fc.Feeds, s.releaseKeys)
	if err != nil {
		errs = append(errs, err)
	}
	s.feeds = feeds
	for i, t := range fc.Auth.Tokens {
		role, err := api.ParseRole(t.Role)
		if err != nil {
			errs = append(errs, fmt.Errorf("auth.tokens[%d]: %w", i, err))
			continue
		}
		tok, err := api.NewToken(t.Name, role, t.SHA256)
		if err != nil {
			errs = append(errs, fmt.Errorf("auth.tokens[%d]: %w", i, err))
			continue
		}
		s.auth.Tokens = append(s.auth.Tokens, tok)
	}
	if fl, err := api.NewFleetLockAccess(fc.FleetLock.AllowUnauthenticatedFrom, fc.FleetLock.Groups); err != nil {
		errs = append(errs, fmt.Errorf("fleetlock: %w", err))
	} else {
		s.fleetLock = fl
	}
	if fc.Auth.PeerTokenFile != "" {
		b, err := os.ReadFile(fc.Auth.PeerTokenFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("auth.peer_token_file: %w", err))
		} else if s.peerToken = strings.TrimSpace(string(b)); len(s.peerToken) < 16 {
			errs = append(errs, errors.New("auth.peer_token_file: token shorter than 16 characters"))
		} else {
			tok, _ := api.NewToken("peer", api.RolePeer, api.HashToken(s.peerToken))
			s.auth.Tokens = append(s.auth.Tokens, tok)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return s, fmt.Errorf("config %s: %w", path, err)
	}
	return s, nil
}

// loadFeeds resolves and validates the [[feed]] tables: every problem of
// every feed is reported; names are unique; a feed's keys must be among
// the trusted release keys (a feed narrows them, never widens them).
func loadFeeds(in []feedConfig, releaseKeys []ed25519.PublicKey) ([]feed.Config, error) {
	var (
		out  []feed.Config
		errs []error
	)
	names := map[string]bool{}
	for i, f := range in {
		c := feed.Config{Name: f.Name, Kind: f.Kind, URL: f.URL, Suite: f.Suite, Component: f.Component, Arch: f.Arch,
			Package: f.Package, Line: f.Line, Interval: f.Interval.Duration, Timeout: f.Timeout.Duration, CAFile: f.CAFile}
		var want []ed25519.PublicKey
		for j, path := range f.Keys {
			k, err := signing.LoadPublicKey(path)
			if err != nil {
				errs = append(errs, fmt.Errorf("feed[%d].keys[%d]: %w", i, j, err))
				continue
			}
			want = append(want, k)
		}
		keys, err := feed.SubsetKeys(want, releaseKeys)
		if err != nil {
			errs = append(errs, fmt.Errorf("feed[%d] (%s): %w", i, f.Name, err))
		}
		c.Keys = keys
		if err := c.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("feed[%d]: %w", i, err))
		} else if _, err := c.TLSConfig(); err != nil {
			errs = append(errs, fmt.Errorf("feed[%d]: %w", i, err))
		}
		if names[f.Name] {
			errs = append(errs, fmt.Errorf("feed[%d]: name %q used twice", i, f.Name))
		}
		names[f.Name] = true
		out = append(out, c)
	}
	return out, errors.Join(errs...)
}
