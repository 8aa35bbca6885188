package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// TestSetHostLine: POST /api/v1/hosts/{id}/line assigns a kernel line
// (operators only; validated in one place, errors {kind,value}); the
// host's heartbeat answer carries it, and its view says where it comes
// from; datacenter line rules are validated likewise.
func TestSetHostLine(t *testing.T) {
	e := newEnv(t)
	e.setDC("fra", wire.DatacenterUpdate{SlotLimit: ptr(1)})
	mustOK(t, e.do(http.MethodPost, wire.PathHeartbeat, tokAgent, wire.Heartbeat{HostID: "h1", Datacenter: "fra", KernelLine: "6.12", Kernel: "6.12.85", Phase: wire.PhaseIdle}))
	path := func(id string) string { return wire.PathHost + id + wire.PathHostLine }
	tests := []struct {
		name   string
		token  string
		id     string
		body   any
		status int
		kind   string
		line   string // the host's line afterwards
		source string
	}{
		{"read role", tokRead, "h1", wire.HostLineRequest{Line: "6.18"}, 403, wire.KindForbidden, "", ""},
		{"agent", tokAgent, "h1", wire.HostLineRequest{Line: "6.18"}, 403, wire.KindForbidden, "", ""},
		{"not a line", tokOperate, "h1", wire.HostLineRequest{Line: "6.x"}, 400, wire.KindInvalidRequest, "", ""},
		{"unknown field", tokOperate, "h1", `{"line":"6.18","forced":true}`, 400, wire.KindInvalidRequest, "", ""},
		{"empty body", tokOperate, "h1", "", 400, wire.KindInvalidRequest, "", ""},
		{"force a clear", tokOperate, "h1", wire.HostLineRequest{Force: true}, 400, wire.KindInvalidRequest, "", ""},
		{"unknown host", tokOperate, "h9", wire.HostLineRequest{Line: "6.18", Force: true}, 404, wire.KindNotFound, "", ""},
		{"no release of the line", tokOperate, "h1", wire.HostLineRequest{Line: "6.18"}, 400, wire.KindInvalidRequest, "", ""},
		{"forced", tokOperate, "h1", wire.HostLineRequest{Line: "6.18", Force: true, Reason: "canary of 6.18"}, 200, "", "6.18", "operator"},
		{"cleared", tokOperate, "h1", wire.HostLineRequest{Line: ""}, 200, "", "6.12", "agent"},
		{"forced again", tokOperate, "h1", wire.HostLineRequest{Line: "6.18", Force: true}, 200, "", "6.18", "operator"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(http.MethodPost, path(tc.id), tc.token, tc.body)
			if tc.status != 200 {
				checkError(t, r, tc.status, tc.kind)
				return
			}
			if h := decodeOK[wire.Host](t, r); h.ID != tc.id || h.KernelLine != tc.line || h.LineSource != tc.source || h.AgentLine != "6.12" {
				t.Fatalf("host %+v, want line %s from %s", h, tc.line, tc.source)
			}
		})
	}
	// The agent restarted with its configured 6.12: its answer says 6.18.
	ds := decodeOK[wire.DesiredState](t, e.do(http.MethodPost, wire.PathHeartbeat, tokAgent,
		wire.Heartbeat{HostID: "h1", Datacenter: "fra", KernelLine: "6.12", Kernel: "6.12.85", Phase: wire.PhaseIdle}))
	if ds.KernelLine != "6.18" {
		t.Fatalf("heartbeat answer line %q, want 6.18", ds.KernelLine)
	}
	// It reports following it (a durable change, once).
	mustOK(t, e.do(http.MethodPost, wire.PathHeartbeat, tokAgent,
		wire.Heartbeat{HostID: "h1", Datacenter: "fra", KernelLine: "6.12", AssignedLine: "6.18", Kernel: "6.12.85", Phase: wire.PhaseIdle}))
	if h := decodeOK[wire.Host](t, e.do(http.MethodGet, wire.PathHost+"h1", tokRead, nil)); h.AssignedLine != "6.18" {
		t.Fatalf("host view %+v: want assigned line 6.18 reported", h)
	}
	checkError(t, e.do(http.MethodPost, wire.PathHeartbeat, tokAgent,
		wire.Heartbeat{HostID: "h1", Datacenter: "fra", KernelLine: "6.12", AssignedLine: "lts", Phase: wire.PhaseIdle}), 400, wire.KindInvalidRequest)
	var events []string
	for _, ev := range decodeOK[[]wire.Event](t, e.do(http.MethodGet, wire.PathEvents, tokRead, nil)) {
		if strings.HasPrefix(ev.Type, "line_") {
			events = append(events, ev.Message)
		}
	}
	if len(events) != 6 || !strings.Contains(events[0], "FORCED") || !strings.Contains(events[0], "canary of 6.18 (by olga)") {
		t.Fatalf("line events %q", events)
	}

	if st := decodeOK[wire.Status](t, e.do(http.MethodGet, wire.PathStatus, tokRead, nil)); st.Lines["fra"]["6.18"] != 1 || len(st.Lines["fra"]) != 1 {
		t.Fatalf("status lines %v", st.Lines)
	}

	for _, tc := range []struct {
		name string
		upd  any
		kind string
	}{
		{"line without pct", wire.DatacenterUpdate{Line: ptr("6.18")}, wire.KindInvalidRequest},
		{"pct 101", wire.DatacenterUpdate{Line: ptr("6.18"), LinePct: ptr(101)}, wire.KindInvalidRequest},
		{"negative pct", wire.DatacenterUpdate{LinePct: ptr(-1)}, wire.KindInvalidRequest},
		{"not a line", wire.DatacenterUpdate{Line: ptr("six"), LinePct: ptr(10)}, wire.KindInvalidRequest},
		{"unknown line", wire.DatacenterUpdate{Line: ptr("6.19"), LinePct: ptr(10)}, wire.KindInvalidRequest},
		{"forced", wire.DatacenterUpdate{Line: ptr("6.19"), LinePct: ptr(100), LineForce: true}, ""},
	} {
		t.Run("dc "+tc.name, func(t *testing.T) {
			r := e.do(http.MethodPut, wire.PathDatacenter+"fra", tokOperate, tc.upd)
			if tc.kind != "" {
				checkError(t, r, 400, tc.kind)
				return
			}
			if dc := decodeOK[wire.Datacenter](t, r); dc.LineRule == nil || dc.LineRule.Line != "6.19" || dc.LineRule.Pct != 100 || dc.LineRule.Hosts != 1 || dc.LineRule.Following != 0 {
				// h1's operator assignment wins over the rule.
				t.Fatalf("datacenter %+v", dc.LineRule)
			}
		})
	}
}
