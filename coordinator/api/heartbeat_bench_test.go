package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// BenchmarkHeartbeatAnswer measures what a node spends on one heartbeat
// that changes nothing, answered from its own state (the steady state of
// a region: nearly every heartbeat), in-process without the network:
// the handler's routing, authentication, admission, decoding,
// validation, answer and its encoding. The body is the region
// benchmark's (test/cluster BenchmarkRegionHeartbeats): two policy
// states, a gossip view and address, the desired-state version the
// previous answer gave.
//
// Run: go test ./coordinator/api/ -run '^$' -bench HeartbeatAnswer -benchmem
func BenchmarkHeartbeatAnswer(b *testing.B) {
	e := newEnv(b)
	e.setDC("dc000", wire.DatacenterUpdate{SlotLimit: ptr(2)})
	const hosts = 300
	bodies := make([][]byte, hosts)
	digests := make([]string, hosts)
	for i := range hosts {
		hb := wire.Heartbeat{
			HostID: fmt.Sprintf("h%06d", i), Datacenter: "dc000",
			KernelLine: "6.1", Kernel: "6.1.0-47-amd64", Phase: wire.PhaseIdle,
			BootID: fmt.Sprintf("%08x-6b3c-4d2e-9f1a-%012x", i, i*2654435761%(1<<48)),
			Policies: []wire.PolicyStatus{
				{ID: "copy-fail-af-alg", Version: 3, State: wire.PolicyEnforcing},
				{ID: "userns-create-audit", Version: 1, State: wire.PolicyAuditing},
			},
			View:       &wire.DCView{Alive: hosts},
			GossipAddr: fmt.Sprintf("10.0.%d.%d:7946", i>>8&0xff, i&0xff),
		}
		// Register, then send what the answer's version says.
		ds := decodeOK[wire.DesiredState](b, e.do(http.MethodPost, wire.PathHeartbeat, tokAgent, hb))
		hb.DesiredVersion = ds.DesiredVersion
		data, err := json.Marshal(hb)
		if err != nil {
			b.Fatal(err)
		}
		bodies[i], digests[i] = data, wire.HeartbeatDigest(hb)
	}
	// The state is settled: a heartbeat now changes nothing.
	send := func(i int) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, wire.PathHeartbeat, strings.NewReader(string(bodies[i])))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tokAgent)
		req.Header.Set(wire.HostIDHeader, fmt.Sprintf("h%06d", i))
		req.Header.Set(wire.HeartbeatDigestHeader, digests[i])
		rec := httptest.NewRecorder()
		e.api.ServeHTTP(rec, req)
		return rec
	}
	if rec := send(0); rec.Code != http.StatusOK {
		b.Fatalf("heartbeat: %d %s", rec.Code, rec.Body)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if rec := send(i % hosts); rec.Code != http.StatusOK {
			b.Fatalf("heartbeat: %d %s", rec.Code, rec.Body)
		}
	}
}
