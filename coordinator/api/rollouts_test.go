package api

import (
	"crypto/ed25519"
	"net/http"
	"strings"
	"testing"

	"github.com/kroll-dev/kroll/pkg/wire"
)

func TestRolloutAPI(t *testing.T) {
	e := newEnv(t)
	pub, req := signedRelease(t, 7, "6.1.192-kroll.1")
	e.api.cfg.ReleaseKeys = []ed25519.PublicKey{pub}
	mustOK(t, e.do("POST", wire.PathReleases, tokOperate, req))
	for _, dc := range []string{"fra1", "ams1"} {
		e.setDC(dc, wire.DatacenterUpdate{SlotLimit: ptr(1)})
		for _, h := range []string{"a", "b"} {
			mustOK(t, e.do("POST", wire.PathHeartbeat, tokAgent, wire.Heartbeat{HostID: dc + h, Datacenter: dc, KernelLine: "6.1", Kernel: "6.1.0-47-amd64", Phase: wire.PhaseIdle}))
		}
	}
	checkError(t, e.do("POST", wire.PathRollouts, tokRead, wire.RolloutStartRequest{Release: "6.1.192-kroll.1"}), http.StatusForbidden, wire.KindForbidden)
	checkError(t, e.do("POST", wire.PathRollouts, tokOperate, wire.RolloutStartRequest{Release: "6.1.192-kroll.1", Expedite: true}), http.StatusBadRequest, wire.KindInvalidRequest)
	checkError(t, e.do("POST", wire.PathRollouts, tokOperate, wire.RolloutStartRequest{Release: "6.1.192-kroll.1", Waves: []float64{0.5, 0.2}}), http.StatusBadRequest, wire.KindInvalidRequest)
	checkError(t, e.do("POST", wire.PathRollouts, tokOperate, wire.RolloutStartRequest{Release: "nope"}), http.StatusNotFound, wire.KindNotFound)

	// No staging datacenter: refused unless forced (with a reason).
	checkError(t, e.do("POST", wire.PathRollouts, tokOperate, wire.RolloutStartRequest{Release: "6.1.192-kroll.1", Expedite: true, Reason: "CVE-2026-31431"}), http.StatusConflict, wire.KindConflict)
	r := decodeOK[wire.Rollout](t, e.do("POST", wire.PathRollouts, tokOperate, wire.RolloutStartRequest{
		Release: "6.1.192-kroll.1", Expedite: true, Reason: "CVE-2026-31431", Canary: []string{"ams1"}, Force: true}))
	if r.ID != "6.1.192-kroll.1" || r.State != "running" || len(r.Waves) != 2 || r.Waves[0].Name != "canary" || r.Waves[0].Started.IsZero() {
		t.Fatalf("started %+v", r)
	}
	if p := r.Waves[0].Progress; len(p) != 1 || p[0].Datacenter != "ams1" || p[0].Hosts != 2 || p[0].Pending != 2 {
		t.Fatalf("canary progress %+v", p)
	}
	if !strings.Contains(r.Reason, "CVE-2026-31431") || !strings.Contains(r.Reason, "olga") {
		t.Errorf("reason %q should name the CVE and the operator", r.Reason)
	}
	ds := decodeOK[wire.DesiredState](t, e.do("POST", wire.PathHeartbeat, tokAgent, wire.Heartbeat{HostID: "ams1a", Datacenter: "ams1", KernelLine: "6.1", Kernel: "6.1.0-47-amd64", Phase: wire.PhaseStaged}))
	if ds.Release == nil {
		t.Fatal("canary host got no release")
	}
	got := decodeOK[wire.Rollout](t, e.do("GET", wire.PathRollout+r.ID, tokRead, nil))
	if got.Waves[0].Progress[0].Staged != 1 {
		t.Fatalf("status after a staged report: %+v", got.Waves[0].Progress)
	}
	p := decodeOK[wire.Rollout](t, e.do("POST", wire.PathRollout+r.ID+"/pause", tokOperate, wire.RolloutActionRequest{Reason: "looking at a crash"}))
	if p.State != "paused" || !strings.Contains(p.PauseReason, "looking at a crash") {
		t.Fatalf("paused %+v", p)
	}
	metrics := string(e.do("GET", "/metrics", "", nil).body)
	for _, want := range []string{
		`kroll_rollout_state{kernel_line="6.1",release="6.1.192-kroll.1",rollout="6.1.192-kroll.1",state="paused"} 1`,
		`kroll_rollout_state{kernel_line="6.1",release="6.1.192-kroll.1",rollout="6.1.192-kroll.1",state="running"} 0`,
		`kroll_rollout_waves{kernel_line="6.1",rollout="6.1.192-kroll.1"} 2`,
		`kroll_rollout_waves_completed{kernel_line="6.1",rollout="6.1.192-kroll.1"} 0`,
		`kroll_hosts_phase{datacenter="ams1",phase="staged"} 1`,
		`kroll_hosts_kernel{datacenter="fra1",kernel="6.1.0-47-amd64",kernel_line="6.1"} 2`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if p := decodeOK[wire.Rollout](t, e.do("POST", wire.PathRollout+r.ID+"/resume", tokOperate, nil)); p.State != "running" {
		t.Fatalf("resumed %+v", p)
	}
	if p := decodeOK[wire.Rollout](t, e.do("POST", wire.PathRollout+r.ID+"/abort", tokOperate, nil)); p.State != "aborted" {
		t.Fatalf("aborted %+v", p)
	}
	checkError(t, e.do("POST", wire.PathRollout+r.ID+"/resume", tokOperate, nil), http.StatusConflict, wire.KindConflict)
	checkError(t, e.do("GET", wire.PathRollout+"nope", tokRead, nil), http.StatusNotFound, wire.KindNotFound)
	list := decodeOK[[]wire.Rollout](t, e.do("GET", wire.PathRollouts, tokRead, nil))
	if len(list) != 1 {
		t.Fatalf("list %+v", list)
	}
}
