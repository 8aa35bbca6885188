package api

import (
	"net/http"
	"testing"

	"github.com/kroll-dev/kroll/pkg/wire"
)

const flHeader = wire.FleetLockHeader

func flBody(id, group string) wire.FleetLockRequest {
	return wire.FleetLockRequest{ClientParams: wire.FleetLockClientParams{ID: id, Group: group}}
}

// TestFleetLockRequestValidation covers the protocol's request checks on
// both endpoints: they fail before any state changes.
func TestFleetLockRequestValidation(t *testing.T) {
	e := newEnv(t)
	e.setDC("fra", wire.DatacenterUpdate{SlotLimit: ptr(1)})
	valid := `{"client_params":{"id":"node-a","group":"fra"}}`
	tests := []struct {
		name   string
		token  string
		header []string
		body   any
		status int
		kind   string
	}{
		{"no credentials", "", []string{flHeader, "true"}, valid, 401, wire.KindUnauthorized},
		{"unknown token", "nope", []string{flHeader, "true"}, valid, 401, wire.KindUnauthorized},
		{"read-only token", tokRead, []string{flHeader, "true"}, valid, 403, wire.KindForbidden},
		{"operate token", tokOperate, []string{flHeader, "true"}, valid, 403, wire.KindForbidden},
		{"peer token", tokPeer, []string{flHeader, "true"}, valid, 403, wire.KindForbidden},
		{"missing header", tokAgent, nil, valid, 400, wire.KindMissingHeader},
		{"header false", tokAgent, []string{flHeader, "false"}, valid, 400, wire.KindMissingHeader},
		{"header TRUE", tokAgent, []string{flHeader, "TRUE"}, valid, 400, wire.KindMissingHeader},
		{"header empty", tokAgent, []string{flHeader, ""}, valid, 400, wire.KindMissingHeader},
		{"empty body", tokAgent, []string{flHeader, "true"}, "", 400, wire.KindInvalidClientParams},
		{"not JSON", tokAgent, []string{flHeader, "true"}, "client_params", 400, wire.KindInvalidClientParams},
		{"truncated", tokAgent, []string{flHeader, "true"}, `{"client_params":{"id":"a"`, 400, wire.KindInvalidClientParams},
		{"JSON array", tokAgent, []string{flHeader, "true"}, `[]`, 400, wire.KindInvalidClientParams},
		{"JSON null", tokAgent, []string{flHeader, "true"}, `null`, 400, wire.KindInvalidClientParams},
		{"unknown top-level field", tokAgent, []string{flHeader, "true"}, `{"client_params":{"id":"a","group":"fra"},"x":1}`, 400, wire.KindInvalidClientParams},
		{"unknown client_params field", tokAgent, []string{flHeader, "true"}, `{"client_params":{"id":"a","group":"fra","zone":"z"}}`, 400, wire.KindInvalidClientParams},
		{"duplicate key", tokAgent, []string{flHeader, "true"}, `{"client_params":{"id":"a","id":"b","group":"fra"}}`, 400, wire.KindInvalidClientParams},
		{"wrong key case", tokAgent, []string{flHeader, "true"}, `{"Client_Params":{"id":"a","group":"fra"}}`, 400, wire.KindInvalidClientParams},
		{"trailing data", tokAgent, []string{flHeader, "true"}, valid + `{}`, 400, wire.KindInvalidClientParams},
		{"trailing garbage", tokAgent, []string{flHeader, "true"}, valid + ` x`, 400, wire.KindInvalidClientParams},
		{"id wrong type", tokAgent, []string{flHeader, "true"}, `{"client_params":{"id":1,"group":"fra"}}`, 400, wire.KindInvalidClientParams},
		{"empty id", tokAgent, []string{flHeader, "true"}, flBody("", "fra"), 400, wire.KindInvalidClientParams},
		{"empty group", tokAgent, []string{flHeader, "true"}, flBody("node-a", ""), 400, wire.KindInvalidClientParams},
		{"missing client_params", tokAgent, []string{flHeader, "true"}, `{}`, 400, wire.KindInvalidClientParams},
		{"invalid id", tokAgent, []string{flHeader, "true"}, flBody("../etc", "fra"), 400, wire.KindInvalidClientParams},
		{"invalid UTF-8", tokAgent, []string{flHeader, "true"}, "{\"client_params\":{\"id\":\"\xff\",\"group\":\"fra\"}}", 400, wire.KindInvalidClientParams},
		{"too large", tokAgent, []string{flHeader, "true"}, make([]byte, wire.MaxBodySize+1), 413, wire.KindRequestTooLarge},
	}
	for _, path := range []string{wire.PathFleetLockPreReboot, wire.PathFleetLockSteady} {
		for _, tc := range tests {
			t.Run(path+"/"+tc.name, func(t *testing.T) {
				r := e.do(http.MethodPost, path, tc.token, tc.body, tc.header...)
				checkError(t, r, tc.status, tc.kind)
			})
		}
	}
	// Nothing above took a lock.
	if dc, _ := e.dcState("fra"); len(dc.Slots) != 0 {
		t.Fatalf("slots after invalid requests: %+v", dc.Slots)
	}
}

// TestFleetLockProtocol walks the lock through the protocol's states:
// owned, recursive, limited by the datacenter's slot limit, released by
// steady-state.
func TestFleetLockProtocol(t *testing.T) {
	e := newEnv(t)
	e.setDC("fra", wire.DatacenterUpdate{SlotLimit: ptr(1)})
	steps := []struct {
		name       string
		path, id   string
		group      string
		status     int
		kind       string // for errors
		holdersNow []string
	}{
		{"unknown group", wire.PathFleetLockPreReboot, "node-a", "nowhere", http.StatusConflict, wire.KindUnknownDC, nil},
		{"steady-state with nothing held", wire.PathFleetLockSteady, "node-a", "fra", 200, "", nil},
		{"lock", wire.PathFleetLockPreReboot, "node-a", "fra", 200, "", []string{"node-a"}},
		{"recursive relock by holder", wire.PathFleetLockPreReboot, "node-a", "fra", 200, "", []string{"node-a"}},
		{"second node, limit 1", wire.PathFleetLockPreReboot, "node-b", "fra", http.StatusConflict, wire.KindSemaphoreFull, []string{"node-a"}},
		{"steady-state by non-holder", wire.PathFleetLockSteady, "node-b", "fra", 200, "", []string{"node-a"}},
		{"holder still holds", wire.PathFleetLockPreReboot, "node-a", "fra", 200, "", []string{"node-a"}},
		{"steady-state by holder", wire.PathFleetLockSteady, "node-a", "fra", 200, "", nil},
		{"steady-state again is idempotent", wire.PathFleetLockSteady, "node-a", "fra", 200, "", nil},
		{"other node can lock now", wire.PathFleetLockPreReboot, "node-b", "fra", 200, "", []string{"node-b"}},
		{"first node waits", wire.PathFleetLockPreReboot, "node-a", "fra", http.StatusConflict, wire.KindSemaphoreFull, []string{"node-b"}},
	}
	for _, s := range steps {
		r := e.do(http.MethodPost, s.path, tokAgent, flBody(s.id, s.group), flHeader, "true")
		if s.kind != "" {
			checkError(t, r, s.status, s.kind)
		} else if r.status != 200 || string(r.body) != "{}\n" {
			t.Fatalf("%s: status %d body %q, want 200 {}", s.name, r.status, r.body)
		}
		var holders []string
		for _, sl := range decodeOK[[]wire.Slot](t, e.do(http.MethodGet, wire.PathSlots+"?dc=fra", tokRead, nil)) {
			if sl.Owner != "fleetlock" {
				t.Fatalf("%s: slot owner %q, want fleetlock", s.name, sl.Owner)
			}
			holders = append(holders, sl.HostID)
		}
		if len(holders) != len(s.holdersNow) || (len(holders) == 1 && holders[0] != s.holdersNow[0]) {
			t.Fatalf("%s: holders %v, want %v", s.name, holders, s.holdersNow)
		}
	}
}

// TestFleetLockAgentSlotConflict: a host holding an agent slot cannot take
// or release it through FleetLock.
func TestFleetLockAgentSlotConflict(t *testing.T) {
	e := newEnv(t)
	e.setDC("fra", wire.DatacenterUpdate{SlotLimit: ptr(2)})
	e.heartbeat("h1", "fra")
	mustOK(t, e.do(http.MethodPost, wire.PathSlotAcquire, tokAgent, wire.SlotRequest{HostID: "h1", Datacenter: "fra"}))
	checkError(t, e.do(http.MethodPost, wire.PathFleetLockPreReboot, tokAgent, flBody("h1", "fra"), flHeader, "true"), http.StatusConflict, wire.KindConflict)
	checkError(t, e.do(http.MethodPost, wire.PathFleetLockSteady, tokAgent, flBody("h1", "fra"), flHeader, "true"), http.StatusConflict, wire.KindConflict)
}
