package api

import (
	"crypto/ed25519"
	"net/http"
	"testing"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// TestSlotForWithdrawnRelease: a slot request names the release it is
// for; once an operator rejects that release mid-rollout, the acquire and
// the fencing renewal before the boot are refused (409
// release_withdrawn), a renewal without a release (after the boot) is
// not, and an invalid release name is a 400.
func TestSlotForWithdrawnRelease(t *testing.T) {
	e := newEnv(t)
	const id = "6.1.192-kroll.1"
	pub, req := signedRelease(t, 7, id)
	e.api.cfg.ReleaseKeys = []ed25519.PublicKey{pub}
	mustOK(t, e.do("POST", wire.PathReleases, tokOperate, req))
	e.setDC("ams1", wire.DatacenterUpdate{SlotLimit: ptr(2)})
	for _, h := range []string{"a", "b"} {
		mustOK(t, e.do("POST", wire.PathHeartbeat, tokAgent, wire.Heartbeat{HostID: "ams1" + h, Datacenter: "ams1", KernelLine: "6.1", Kernel: "6.1.0-47-amd64", Phase: wire.PhaseIdle}))
	}
	decodeOK[wire.Rollout](t, e.do("POST", wire.PathRollouts, tokOperate, wire.RolloutStartRequest{
		Release: id, Expedite: true, Reason: "CVE-2026-31431", Canary: []string{"ams1"}, Force: true}))

	sl := decodeOK[wire.Slot](t, e.do("POST", wire.PathSlotAcquire, tokAgent, wire.SlotRequest{HostID: "ams1a", Datacenter: "ams1", Release: id}))
	mustOK(t, e.do("POST", wire.PathSlotRenew, tokAgent, wire.SlotRequest{HostID: "ams1a", Datacenter: "ams1", Token: sl.Token, Release: id}))
	checkError(t, e.do("POST", wire.PathSlotAcquire, tokAgent, wire.SlotRequest{HostID: "ams1b", Datacenter: "ams1", Release: "a b"}), http.StatusBadRequest, wire.KindInvalidRequest)
	checkError(t, e.do("POST", wire.PathSlotAcquire, tokAgent, wire.SlotRequest{HostID: "ams1b", Datacenter: "ams1", Release: "6.1.193-kroll.1"}), http.StatusConflict, wire.KindReleaseWithdrawn)

	mustOK(t, e.do("POST", wire.PathReleases+"/"+id+wire.PathReleaseReject, tokOperate, wire.ReleaseRejectRequest{Reason: "crashes on boot"}))
	steps := []struct {
		name string
		path string
		req  wire.SlotRequest
		code int
		kind string
	}{
		{"acquire", wire.PathSlotAcquire, wire.SlotRequest{HostID: "ams1b", Datacenter: "ams1", Release: id}, http.StatusConflict, wire.KindReleaseWithdrawn},
		{"renew before the boot", wire.PathSlotRenew, wire.SlotRequest{HostID: "ams1a", Datacenter: "ams1", Token: sl.Token, Release: id}, http.StatusConflict, wire.KindReleaseWithdrawn},
		{"renew after the boot", wire.PathSlotRenew, wire.SlotRequest{HostID: "ams1a", Datacenter: "ams1", Token: sl.Token}, http.StatusOK, ""},
		{"give the slot back", wire.PathSlotRelease, wire.SlotRequest{HostID: "ams1a", Datacenter: "ams1", Token: sl.Token, Reason: "release withdrawn"}, http.StatusOK, ""},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			r := e.do("POST", st.path, tokAgent, st.req)
			if st.code == http.StatusOK {
				mustOK(t, r)
				return
			}
			checkError(t, r, st.code, st.kind)
		})
	}
	ds := decodeOK[wire.DesiredState](t, e.do("POST", wire.PathHeartbeat, tokAgent, wire.Heartbeat{HostID: "ams1b", Datacenter: "ams1", KernelLine: "6.1", Kernel: "6.1.0-47-amd64", Phase: wire.PhaseWaitingSlot}))
	if ds.Release != nil {
		t.Fatalf("the rejected release %s is still desired", ds.Release.ID)
	}
}
