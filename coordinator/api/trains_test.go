package api

import (
	"crypto/ed25519"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// TestTrainAPI: train set validates its input in one error (zone,
// datacenters, durations, freezes) and needs the operator role; show,
// hold, resume, skip and expedite answer the train; release reject
// rejects.
func TestTrainAPI(t *testing.T) {
	e := newEnv(t)
	e.setDC("stg1", wire.DatacenterUpdate{Tier: ptr(fsm.TierStaging), SlotLimit: ptr(1)})
	e.setDC("fra1", wire.DatacenterUpdate{SlotLimit: ptr(1)})
	good := wire.TrainSetRequest{Staging: []string{"stg1"}, StagingSoakSeconds: 72 * 3600, ControlSoakSeconds: 24 * 3600,
		EdgeCycleSeconds: 672 * 3600, Departure: "Tue 09:00 Europe/Berlin", Freezes: []string{"2026-12-20..2027-01-04"}}
	for _, tc := range []struct {
		name string
		edit func(*wire.TrainSetRequest)
		want []string
	}{
		{"unknown zone", func(r *wire.TrainSetRequest) { r.Departure = "Tue 09:00 Mars/Base" }, []string{"zone"}},
		{"bad weekday and freeze", func(r *wire.TrainSetRequest) {
			r.Departure = "Tuz 09:00 UTC"
		}, []string{"unknown weekday"}},
		{"freeze reversed", func(r *wire.TrainSetRequest) { r.Freezes = []string{"2027-01-04..2026-12-20"} }, []string{"before its first"}},
		{"edge dc and unknown dc", func(r *wire.TrainSetRequest) { r.Staging = []string{"fra1", "nope"} }, []string{`"fra1" is of tier edge`, `"nope" does not exist`}},
		{"cycle", func(r *wire.TrainSetRequest) { r.EdgeCycleSeconds = 100 * 3600 }, []string{"whole weeks"}},
		{"negative soak", func(r *wire.TrainSetRequest) { r.StagingSoakSeconds = -1 }, []string{"staging_soak_seconds"}},
		{"invalid staging name", func(r *wire.TrainSetRequest) { r.Staging = []string{"bad name"} }, []string{"staging"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := good
			tc.edit(&req)
			er := checkError(t, e.do("PUT", wire.PathTrain+"6.12", tokOperate, req), http.StatusBadRequest, wire.KindInvalidRequest)
			for _, w := range tc.want {
				if !strings.Contains(er.Value, w) {
					t.Errorf("error %q lacks %q", er.Value, w)
				}
			}
		})
	}
	for _, bad := range []string{"612", "6.12.0", "6.012", "x"} {
		er := checkError(t, e.do("PUT", wire.PathTrain+bad, tokOperate, good), http.StatusBadRequest, wire.KindInvalidRequest)
		if !strings.Contains(er.Value, "invalid line") {
			t.Errorf("train set of line %q: %q", bad, er.Value)
		}
	}
	checkError(t, e.do("PUT", wire.PathTrain+"6.12", tokRead, good), http.StatusForbidden, wire.KindForbidden)
	checkError(t, e.do("GET", wire.PathTrain+"6.12", tokRead, nil), http.StatusNotFound, wire.KindNotFound)
	tr := decodeOK[wire.Train](t, e.do("PUT", wire.PathTrain+"6.12", tokOperate, good))
	berlin, _ := time.LoadLocation("Europe/Berlin")
	if nd := tr.NextDeparture.In(berlin); nd.Weekday() != time.Tuesday || nd.Hour() != 9 || nd.Minute() != 0 || !nd.After(time.Now().Add(-time.Minute)) {
		t.Fatalf("next departure %s", tr.NextDeparture)
	}
	if tr.Departure != "Tue 09:00 Europe/Berlin" || len(tr.Freezes) != 1 || tr.StagingSoakSeconds != 72*3600 {
		t.Fatalf("train %+v", tr)
	}
	checkError(t, e.do("POST", wire.PathTrain+"6.12/hold", tokOperate, wire.TrainActionRequest{}), http.StatusBadRequest, wire.KindInvalidRequest)
	tr = decodeOK[wire.Train](t, e.do("POST", wire.PathTrain+"6.12/hold", tokOperate, wire.TrainActionRequest{Reason: "incident 9"}))
	if !tr.Held || !strings.Contains(tr.HoldReason, "incident 9") || !strings.Contains(tr.HoldReason, "olga") {
		t.Fatalf("held %+v", tr)
	}
	checkError(t, e.do("POST", wire.PathTrain+"6.12/hold", tokOperate, wire.TrainActionRequest{Reason: "again"}), http.StatusConflict, wire.KindConflict)
	if tr = decodeOK[wire.Train](t, e.do("POST", wire.PathTrain+"6.12/resume", tokOperate, wire.TrainActionRequest{Reason: "over"})); tr.Held {
		t.Fatalf("resumed %+v", tr)
	}
	if tr = decodeOK[wire.Train](t, e.do("POST", wire.PathTrain+"6.12/skip", tokOperate, wire.TrainActionRequest{Reason: "network change"})); !tr.SkipNext {
		t.Fatalf("skip %+v", tr)
	}
	checkError(t, e.do("POST", wire.PathTrain+"6.12/expedite", tokOperate, wire.TrainExpediteRequest{Release: "nope", Reason: "CVE"}), http.StatusNotFound, wire.KindNotFound)
	checkError(t, e.do("POST", wire.PathTrain+"6.12/expedite", tokOperate, wire.TrainExpediteRequest{Release: "nope"}), http.StatusBadRequest, wire.KindInvalidRequest)
	if list := decodeOK[[]wire.Train](t, e.do("GET", wire.PathTrains, tokRead, nil)); len(list) != 1 || list[0].Line != "6.12" {
		t.Fatalf("list %+v", list)
	}

	// A candidate, rejected by an operator.
	pub, req := signedRelease(t, 7, "6.1.192-kroll.1")
	e.api.cfg.ReleaseKeys = []ed25519.PublicKey{pub}
	mustOK(t, e.do("POST", wire.PathReleases, tokOperate, req))
	rels := decodeOK[[]wire.Release](t, e.do("GET", wire.PathReleases, tokRead, nil))
	if len(rels) != 1 || rels[0].State != fsm.ReleaseCandidate {
		t.Fatalf("releases %+v", rels)
	}
	checkError(t, e.do("POST", wire.PathReleases+"/6.1.192-kroll.1"+wire.PathReleaseReject, tokOperate, wire.ReleaseRejectRequest{}), http.StatusBadRequest, wire.KindInvalidRequest)
	checkError(t, e.do("POST", wire.PathReleases+"/6.1.192-kroll.1"+wire.PathReleaseReject, tokRead, wire.ReleaseRejectRequest{Reason: "x"}), http.StatusForbidden, wire.KindForbidden)
	mustOK(t, e.do("POST", wire.PathReleases+"/6.1.192-kroll.1"+wire.PathReleaseReject, tokOperate, wire.ReleaseRejectRequest{Reason: "bad build"}))
	rels = decodeOK[[]wire.Release](t, e.do("GET", wire.PathReleases, tokRead, nil))
	if rels[0].State != fsm.ReleaseRejected || !strings.Contains(rels[0].StateReason, "bad build") || !strings.Contains(rels[0].Rejected["6.1"], "bad build") {
		t.Fatalf("rejected %+v", rels[0])
	}
	checkError(t, e.do("POST", wire.PathReleases+"/6.1.192-kroll.1"+wire.PathReleaseReject, tokOperate, wire.ReleaseRejectRequest{Reason: "again"}), http.StatusConflict, wire.KindConflict)
	checkError(t, e.do("POST", wire.PathReleases+"/nope"+wire.PathReleaseReject, tokOperate, wire.ReleaseRejectRequest{Reason: "x"}), http.StatusNotFound, wire.KindNotFound)
}
