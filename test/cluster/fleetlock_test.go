package cluster_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// TestFleetLockOverProcesses speaks the FleetLock protocol (Zincati,
// airlock) with plain net/http to a follower, which forwards to the
// leader: exact header and body, owned and recursive locks, the
// semaphore_full refusal as {"kind":"failed_lock_semaphore_full"}, an
// idempotent steady-state of a non-holder, and the lock passing on after
// an unlock.
func TestFleetLockOverProcesses(t *testing.T) {
	c := newCluster(t, 3)
	c.setupDatacenters(map[string]int{"fra": 1}, nil)
	leader := c.waitLeader(10 * time.Second)
	follower := (leader + 1) % len(c.nodes)
	base := c.nodes[follower].url()

	lock, unlock := wire.PathFleetLockPreReboot, wire.PathFleetLockSteady
	params := func(id string) string {
		return fmt.Sprintf(`{"client_params":{"id":%q,"group":"fra"}}`, id)
	}
	for _, step := range []struct {
		name       string
		path       string
		noHeader   bool
		body       string
		wantStatus int
		wantKind   string
	}{
		{"no protocol header", lock, true, params("node-a"), http.StatusBadRequest, wire.KindMissingHeader},
		{"empty id", lock, false, params(""), http.StatusBadRequest, wire.KindInvalidClientParams},
		{"not JSON", lock, false, `{"client_params":`, http.StatusBadRequest, wire.KindInvalidClientParams},
		{"node-a locks", lock, false, params("node-a"), http.StatusOK, ""},
		{"node-a locks again (recursive)", lock, false, params("node-a"), http.StatusOK, ""},
		{"node-b is refused", lock, false, params("node-b"), http.StatusConflict, wire.KindSemaphoreFull},
		{"node-b reports steady state without the lock", unlock, false, params("node-b"), http.StatusOK, ""},
		{"node-b is still refused", lock, false, params("node-b"), http.StatusConflict, wire.KindSemaphoreFull},
		{"node-a unlocks", unlock, false, params("node-a"), http.StatusOK, ""},
		{"node-a unlocks again (idempotent)", unlock, false, params("node-a"), http.StatusOK, ""},
		{"node-b locks", lock, false, params("node-b"), http.StatusOK, ""},
		{"node-a is refused now", lock, false, params("node-a"), http.StatusConflict, wire.KindSemaphoreFull},
	} {
		req, err := http.NewRequest(http.MethodPost, base+step.path, strings.NewReader(step.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+c.agentToken)
		if !step.noHeader {
			req.Header.Set("fleet-lock-protocol", "true")
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if resp.StatusCode != step.wantStatus {
			t.Fatalf("%s: HTTP %d %s, want %d", step.name, resp.StatusCode, body, step.wantStatus)
		}
		if step.wantKind == "" {
			continue
		}
		var e struct {
			Kind  string `json:"kind"`
			Value string `json:"value"`
		}
		if err := json.Unmarshal(body, &e); err != nil || e.Kind != step.wantKind || e.Value == "" {
			t.Fatalf("%s: body %s, want {\"kind\":%q,\"value\":\"…\"}", step.name, body, step.wantKind)
		}
	}

	// The leader agrees: node-b holds fra's only slot, as a FleetLock lock.
	v, err := c.view(leader)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Slots) != 1 || v.Slots[0].HostID != "node-b" || v.Slots[0].Owner != "fleetlock" || v.Slots[0].Datacenter != "fra" {
		t.Fatalf("slots on the leader: %+v, want node-b's fleetlock slot in fra", v.Slots)
	}
}
