package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// TestRemoveHost: POST /api/v1/hosts/{id}/remove forgets a host; a slot
// holder needs force and a reason; only operators may.
func TestRemoveHost(t *testing.T) {
	e := newEnv(t)
	e.setDC("fra", wire.DatacenterUpdate{SlotLimit: ptr(1)})
	for _, h := range []string{"h1", "h2", "h3"} {
		e.heartbeat(h, "fra")
	}
	mustOK(t, e.do(http.MethodPost, wire.PathSlotAcquire, tokAgent, wire.SlotRequest{HostID: "h1", Datacenter: "fra"}))
	path := func(id string) string { return wire.PathHost + id + wire.PathHostRemove }
	tests := []struct {
		name   string
		token  string
		id     string
		body   any
		status int
		kind   string
	}{
		{"read role", tokRead, "h2", wire.HostRemoveRequest{}, 403, wire.KindForbidden},
		{"agent", tokAgent, "h2", wire.HostRemoveRequest{}, 403, wire.KindForbidden},
		{"unknown host", tokOperate, "h9", wire.HostRemoveRequest{}, 404, wire.KindNotFound},
		{"invalid id", tokOperate, "a%20b", wire.HostRemoveRequest{}, 400, wire.KindInvalidRequest},
		{"unknown field", tokOperate, "h2", `{"forced":true}`, 400, wire.KindInvalidRequest},
		{"holder", tokOperate, "h1", wire.HostRemoveRequest{}, 409, wire.KindConflict},
		{"holder forced without reason", tokOperate, "h1", wire.HostRemoveRequest{Force: true}, 400, wire.KindInvalidRequest},
		{"idle host, empty body", tokOperate, "h2", "", 200, ""},
		{"again", tokOperate, "h2", "", 404, wire.KindNotFound},
		{"holder forced", tokOperate, "h1", wire.HostRemoveRequest{Force: true, Reason: "chassis pulled"}, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(http.MethodPost, path(tc.id), tc.token, tc.body)
			if tc.status == 200 {
				if h := decodeOK[wire.Host](t, r); h.ID != tc.id || h.Datacenter != "fra" {
					t.Fatalf("removed host %+v", h)
				}
				return
			}
			checkError(t, r, tc.status, tc.kind)
		})
	}
	var ids []string
	for _, h := range decodeOK[[]wire.Host](t, e.do(http.MethodGet, wire.PathHosts, tokRead, nil)) {
		ids = append(ids, h.ID)
	}
	if strings.Join(ids, ",") != "h3" {
		t.Fatalf("hosts left %v, want h3", ids)
	}
	if slots := decodeOK[[]wire.Slot](t, e.do(http.MethodGet, wire.PathSlots, tokRead, nil)); len(slots) != 0 {
		t.Fatalf("slots left %+v", slots)
	}
	var removed, forced bool
	for _, ev := range decodeOK[[]wire.Event](t, e.do(http.MethodGet, wire.PathEvents, tokRead, nil)) {
		removed = removed || ev.Type == "host_removed" && ev.Host == "h2"
		forced = forced || ev.Type == "host_removed" && ev.Host == "h1" && strings.Contains(ev.Message, "chassis pulled")
	}
	if !removed || !forced {
		t.Fatalf("events: h2 removed %v, h1 removed with reason %v", removed, forced)
	}
}

// TestHeartbeatViewClamped: a gossip view larger than the datacenter's
// registered size is clamped to it before it is replicated.
func TestHeartbeatViewClamped(t *testing.T) {
	e := newEnv(t)
	e.setDC("fra", wire.DatacenterUpdate{SlotLimit: ptr(1)})
	for _, h := range []string{"h1", "h2", "h3"} {
		e.heartbeat(h, "fra")
	}
	tests := []struct {
		name string
		host string
		view wire.DCView
		want wire.DCView
	}{
		{"honest", "h1", wire.DCView{Alive: 2, Dead: 1}, wire.DCView{Alive: 2, Dead: 1}},
		{"huge dead", "h1", wire.DCView{Alive: 3, Dead: 1 << 20}, wire.DCView{Alive: 3, Dead: 3}},
		{"sum too large", "h2", wire.DCView{Alive: 1, Dead: 2, Rebooting: 2, Draining: 2}, wire.DCView{Alive: 1, Dead: 2, Rebooting: 1}},
		{"new host counts itself", "h4", wire.DCView{Alive: 9, Dead: 9}, wire.DCView{Alive: 4, Dead: 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.view
			mustOK(t, e.do(http.MethodPost, wire.PathHeartbeat, tokAgent, wire.Heartbeat{HostID: tc.host, Datacenter: "fra", Phase: wire.PhaseIdle, View: &v}))
			var got wire.DCView
			e.store.FSM().View(func(st *fsm.State) { got = *st.Hosts[tc.host].View })
			if got != tc.want {
				t.Fatalf("stored view %+v, want %+v", got, tc.want)
			}
		})
	}
}
