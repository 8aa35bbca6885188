package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/kroll-dev/kroll/pkg/wire"
)

func TestDatacenterSet(t *testing.T) {
	e := newEnv(t)
	steps := []struct {
		name   string
		dc     string
		token  string
		body   any
		status int
		kind   string
		check  func(wire.Datacenter) bool
	}{
		{"create", "fra", tokOperate, wire.DatacenterUpdate{SlotLimit: ptr(2), MinHealthyPct: ptr(80), Window: ptr("Mon-Sun 02:00-05:00 Europe/Berlin"), Tier: ptr("edge")}, 200, "",
			func(d wire.Datacenter) bool {
				return d.Name == "fra" && d.SlotLimit == 2 && d.SlotPct == 0 && d.MinHealthyPct == 80 && d.Tier == "edge" &&
					d.Window == "Mon-Sun 02:00-05:00 Europe/Berlin" && !d.Paused
			}},
		{"switch to --slots-pct", "fra", tokOperate, wire.DatacenterUpdate{SlotPct: ptr(25)}, 200, "",
			func(d wire.Datacenter) bool { return d.SlotLimit == 0 && d.SlotPct == 25 && d.MinHealthyPct == 80 }},
		{"switch back to --slots", "fra", tokOperate, wire.DatacenterUpdate{SlotLimit: ptr(3)}, 200, "",
			func(d wire.Datacenter) bool { return d.SlotLimit == 3 && d.SlotPct == 0 && d.EffectiveLimit == 3 }},
		{"empty update keeps settings", "fra", tokOperate, `{}`, 200, "",
			func(d wire.Datacenter) bool {
				return d.SlotLimit == 3 && d.Window == "Mon-Sun 02:00-05:00 Europe/Berlin"
			}},
		{"admin may set", "fra", tokAdmin, wire.DatacenterUpdate{Tier: ptr("staging"), FailureBudget: ptr(4)}, 200, "",
			func(d wire.Datacenter) bool { return d.Tier == "staging" && d.FailureBudget == 4 }},
		{"window always", "fra", tokOperate, wire.DatacenterUpdate{Window: ptr("always")}, 200, "",
			func(d wire.Datacenter) bool { return d.Window == "always" }},
		{"invalid window", "fra", tokOperate, wire.DatacenterUpdate{Window: ptr("Mon-Sun 02:00-05:00")}, 400, wire.KindInvalidRequest, nil},
		{"invalid window zone", "fra", tokOperate, wire.DatacenterUpdate{Window: ptr("Mon-Sun 02:00-05:00 Mars/Olympus")}, 400, wire.KindInvalidRequest, nil},
		{"invalid tier", "fra", tokOperate, wire.DatacenterUpdate{Tier: ptr("core")}, 400, wire.KindInvalidRequest, nil},
		{"slots-pct over 100", "fra", tokOperate, wire.DatacenterUpdate{SlotPct: ptr(101)}, 400, wire.KindInvalidRequest, nil},
		{"negative slots", "fra", tokOperate, wire.DatacenterUpdate{SlotLimit: ptr(-1)}, 400, wire.KindInvalidRequest, nil},
		{"zero slots", "fra", tokOperate, wire.DatacenterUpdate{SlotLimit: ptr(0)}, 400, wire.KindInvalidRequest, nil},
		{"both slots and slots-pct", "fra", tokOperate, wire.DatacenterUpdate{SlotLimit: ptr(2), SlotPct: ptr(10)}, 400, wire.KindInvalidRequest, nil},
		{"min-healthy-pct over 100", "fra", tokOperate, wire.DatacenterUpdate{MinHealthyPct: ptr(101)}, 400, wire.KindInvalidRequest, nil},
		{"create without a slot limit", "ams", tokOperate, `{}`, 400, wire.KindInvalidRequest, nil},
		{"unknown field", "fra", tokOperate, `{"slots":2}`, 400, wire.KindInvalidRequest, nil},
		{"wrong type", "fra", tokOperate, `{"slot_limit":"2"}`, 400, wire.KindInvalidRequest, nil},
		{"empty body", "fra", tokOperate, ``, 400, wire.KindInvalidRequest, nil},
		{"invalid name", "a%20b", tokOperate, wire.DatacenterUpdate{SlotLimit: ptr(1)}, 400, wire.KindInvalidRequest, nil},
		{"read token", "fra", tokRead, wire.DatacenterUpdate{SlotLimit: ptr(1)}, 403, wire.KindForbidden, nil},
		{"agent token", "fra", tokAgent, wire.DatacenterUpdate{SlotLimit: ptr(1)}, 403, wire.KindForbidden, nil},
		{"no credentials", "fra", "", wire.DatacenterUpdate{SlotLimit: ptr(1)}, 401, wire.KindUnauthorized, nil},
	}
	for _, s := range steps {
		r := e.do(http.MethodPut, wire.PathDatacenter+s.dc, s.token, s.body)
		if s.kind != "" {
			checkError(t, r, s.status, s.kind)
			continue
		}
		d := decodeOK[wire.Datacenter](t, r)
		if !s.check(d) {
			t.Fatalf("%s: datacenter %+v", s.name, d)
		}
		if got := decodeOK[wire.Datacenter](t, e.do(http.MethodGet, wire.PathDatacenter+s.dc, tokRead, nil)); !reflect.DeepEqual(got, d) {
			t.Fatalf("%s: GET answers %+v, PUT answered %+v", s.name, got, d)
		}
	}
	// Refused updates changed nothing.
	d := decodeOK[wire.Datacenter](t, e.do(http.MethodGet, wire.PathDatacenter+"fra", tokRead, nil))
	if d.SlotLimit != 3 || d.Tier != "staging" || d.Window != "always" || d.MinHealthyPct != 80 {
		t.Fatalf("after refused updates: %+v", d)
	}
	list := decodeOK[[]wire.Datacenter](t, e.do(http.MethodGet, wire.PathDatacenters, tokRead, nil))
	if len(list) != 1 || !reflect.DeepEqual(list[0], d) {
		t.Fatalf("datacenter list %+v", list)
	}
	checkError(t, e.do(http.MethodGet, wire.PathDatacenter+"ams", tokRead, nil), 404, wire.KindNotFound)
}

func TestPauseResume(t *testing.T) {
	e := newEnv(t)
	e.setDC("fra", wire.DatacenterUpdate{SlotLimit: ptr(1)})
	e.heartbeat("h1", "fra")
	pause, resume := wire.PathDatacenter+"fra"+wire.PathDatacenterPause, wire.PathDatacenter+"fra"+wire.PathDatacenterResume
	steps := []struct {
		name   string
		path   string
		token  string
		body   any
		status int
		kind   string
		paused bool
		reason string
	}{
		{"pause with reason", pause, tokOperate, wire.PauseRequest{Reason: "CVE triage"}, 200, "", true, "CVE triage"},
		{"acquire while paused", "", "", nil, 0, "", true, "CVE triage"},
		{"resume with empty body", resume, tokOperate, nil, 200, "", false, ""},
		{"pause with empty body", pause, tokOperate, nil, 200, "", true, "paused by olga"},
		{"resume with {}", resume, tokOperate, `{}`, 200, "", false, ""},
		{"pause with whitespace body", pause, tokAdmin, " \n", 200, "", true, "paused by alice"},
		{"resume with a body", resume, tokOperate, `{"reason":"x"}`, 400, wire.KindInvalidRequest, true, "paused by alice"},
		{"resume with garbage", resume, tokOperate, `nope`, 400, wire.KindInvalidRequest, true, "paused by alice"},
		{"read token resumes", resume, tokRead, nil, 403, wire.KindForbidden, true, "paused by alice"},
		{"agent token pauses", pause, tokAgent, nil, 403, wire.KindForbidden, true, "paused by alice"},
		{"resume", resume, tokOperate, nil, 200, "", false, ""},
		{"pause with unknown field", pause, tokOperate, `{"why":"x"}`, 400, wire.KindInvalidRequest, false, ""},
		{"pause reason too long", pause, tokOperate, wire.PauseRequest{Reason: strings.Repeat("r", 1025)}, 400, wire.KindInvalidRequest, false, ""},
		{"pause unknown datacenter", wire.PathDatacenter + "ams" + wire.PathDatacenterPause, tokOperate, nil, 404, wire.KindNotFound, false, ""},
		{"resume unknown datacenter", wire.PathDatacenter + "ams" + wire.PathDatacenterResume, tokOperate, nil, 404, wire.KindNotFound, false, ""},
	}
	for _, s := range steps {
		switch {
		case s.path == "":
			checkError(t, e.do(http.MethodPost, wire.PathSlotAcquire, tokAgent, wire.SlotRequest{HostID: "h1", Datacenter: "fra"}), 409, wire.KindPaused)
			checkError(t, e.do(http.MethodPost, wire.PathFleetLockPreReboot, tokAgent, flBody("node-z", "fra"), flHeader, "true"), 409, wire.KindPaused)
		case s.kind != "":
			checkError(t, e.do(http.MethodPost, s.path, s.token, s.body), s.status, s.kind)
		default:
			d := decodeOK[wire.Datacenter](t, e.do(http.MethodPost, s.path, s.token, s.body))
			if d.Paused != s.paused || d.PauseReason != s.reason {
				t.Fatalf("%s: answered %+v", s.name, d)
			}
		}
		d := decodeOK[wire.Datacenter](t, e.do(http.MethodGet, wire.PathDatacenter+"fra", tokRead, nil))
		if d.Paused != s.paused || d.PauseReason != s.reason {
			t.Fatalf("%s: datacenter paused=%v reason=%q, want %v %q", s.name, d.Paused, d.PauseReason, s.paused, s.reason)
		}
	}
}

func TestSlotsListAndRelease(t *testing.T) {
	e := newEnv(t)
	e.setDC("fra", wire.DatacenterUpdate{SlotLimit: ptr(2)})
	e.setDC("ams", wire.DatacenterUpdate{SlotLimit: ptr(2)})
	e.heartbeat("h1", "fra")
	e.heartbeat("h2", "fra")
	e.heartbeat("a1", "ams")
	tokens := map[string]uint64{}
	for _, acq := range []wire.SlotRequest{{HostID: "h2", Datacenter: "fra"}, {HostID: "h1", Datacenter: "fra"}, {HostID: "a1", Datacenter: "ams"}} {
		tokens[acq.HostID] = decodeOK[wire.Slot](t, e.do(http.MethodPost, wire.PathSlotAcquire, tokAgent, acq)).Token
	}
	list := func(q string) []string {
		var out []string
		for _, sl := range decodeOK[[]wire.Slot](t, e.do(http.MethodGet, wire.PathSlots+q, tokRead, nil)) {
			out = append(out, sl.Datacenter+"/"+sl.HostID)
		}
		return out
	}
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"", []string{"ams/a1", "fra/h1", "fra/h2"}},
		{"?dc=fra", []string{"fra/h1", "fra/h2"}},
		{"?dc=ams", []string{"ams/a1"}},
		{"?dc=nowhere", nil},
	} {
		if got := list(tc.q); !slices.Equal(got, tc.want) {
			t.Fatalf("slots%s: %v, want %v", tc.q, got, tc.want)
		}
	}
	if r := e.do(http.MethodGet, wire.PathSlots+"?dc=nowhere", tokRead, nil); strings.TrimSpace(string(r.body)) != "[]" {
		t.Fatalf("empty slot list is %q, want []", r.body)
	}

	tests := []struct {
		name   string
		token  string
		body   any
		status int
		kind   string
	}{
		{"read token", tokRead, wire.SlotReleaseRequest{Datacenter: "fra", HostID: "h1"}, 403, wire.KindForbidden},
		{"agent token", tokAgent, wire.SlotReleaseRequest{Datacenter: "fra", HostID: "h1"}, 403, wire.KindForbidden},
		{"no credentials", "", wire.SlotReleaseRequest{Datacenter: "fra", HostID: "h1"}, 401, wire.KindUnauthorized},
		{"missing host", tokOperate, wire.SlotReleaseRequest{Datacenter: "fra"}, 400, wire.KindInvalidRequest},
		{"unknown field", tokOperate, `{"datacenter":"fra","host_id":"h1","force":true}`, 400, wire.KindInvalidRequest},
		{"unknown datacenter", tokOperate, wire.SlotReleaseRequest{Datacenter: "nowhere", HostID: "h1"}, 404, wire.KindNotFound},
		{"not a holder", tokOperate, wire.SlotReleaseRequest{Datacenter: "ams", HostID: "h1"}, 409, wire.KindNotHolder},
		{"operator releases h1", tokOperate, wire.SlotReleaseRequest{Datacenter: "fra", HostID: "h1", Reason: "host dead"}, 200, ""},
		{"again", tokOperate, wire.SlotReleaseRequest{Datacenter: "fra", HostID: "h1"}, 409, wire.KindNotHolder},
		{"admin releases a1", tokAdmin, wire.SlotReleaseRequest{Datacenter: "ams", HostID: "a1"}, 200, ""},
	}
	for _, tc := range tests {
		r := e.do(http.MethodPost, wire.PathSlotsRelease, tc.token, tc.body)
		if tc.kind != "" {
			checkError(t, r, tc.status, tc.kind)
			continue
		}
		req := tc.body.(wire.SlotReleaseRequest)
		if sl := decodeOK[wire.Slot](t, r); sl.HostID != req.HostID || sl.Datacenter != req.Datacenter || sl.Token != tokens[req.HostID] {
			t.Fatalf("%s: released slot %+v", tc.name, sl)
		}
	}
	if got := list(""); !slices.Equal(got, []string{"fra/h2"}) {
		t.Fatalf("slots after releases: %v", got)
	}
	// The holder's own release now fails: its token is gone.
	checkError(t, e.do(http.MethodPost, wire.PathSlotRelease, tokAgent, wire.SlotRequest{HostID: "h1", Datacenter: "fra", Token: tokens["h1"]}), 409, wire.KindNotHolder)
	// The break-glass release is an event with its reason.
	var found bool
	for _, ev := range decodeOK[[]wire.Event](t, e.do(http.MethodGet, wire.PathEvents, tokRead, nil)) {
		found = found || ev.Type == "slot_force_released" && ev.Host == "h1" && strings.Contains(ev.Message, "host dead")
	}
	if !found {
		t.Fatal("no slot_force_released event for h1")
	}
}

func TestHosts(t *testing.T) {
	e := newEnv(t)
	e.setDC("fra", wire.DatacenterUpdate{SlotLimit: ptr(1)})
	e.setDC("ams", wire.DatacenterUpdate{SlotLimit: ptr(1)})
	e.heartbeat("h2", "fra")
	e.heartbeat("h1", "fra")
	e.heartbeat("a1", "ams")
	ids := func(q string) []string {
		var out []string
		for _, h := range decodeOK[[]wire.Host](t, e.do(http.MethodGet, wire.PathHosts+q, tokRead, nil)) {
			out = append(out, h.ID)
		}
		return out
	}
	if got := ids(""); !slices.Equal(got, []string{"a1", "h1", "h2"}) {
		t.Fatalf("hosts %v", got)
	}
	if got := ids("?dc=fra"); !slices.Equal(got, []string{"h1", "h2"}) {
		t.Fatalf("hosts in fra %v", got)
	}
	if r := e.do(http.MethodGet, wire.PathHosts+"?dc=nowhere", tokRead, nil); strings.TrimSpace(string(r.body)) != "[]" {
		t.Fatalf("empty host list is %q, want []", r.body)
	}
	if h := decodeOK[wire.Host](t, e.do(http.MethodGet, wire.PathHost+"a1", tokRead, nil)); h.ID != "a1" || h.Datacenter != "ams" {
		t.Fatalf("host a1: %+v", h)
	}
	checkError(t, e.do(http.MethodGet, wire.PathHost+"h9", tokRead, nil), 404, wire.KindNotFound)
	checkError(t, e.do(http.MethodGet, wire.PathHost+"h1", "", nil), 401, wire.KindUnauthorized)
	checkError(t, e.do(http.MethodGet, wire.PathHost+"h1", tokAgent, nil), 403, wire.KindForbidden)
}

func TestEvents(t *testing.T) {
	e := newEnv(t)
	e.setDC("fra", wire.DatacenterUpdate{SlotLimit: ptr(1)}) // event 1
	for _, h := range []string{"h1", "h2", "h3", "h4"} {     // events 2..5
		e.heartbeat(h, "fra")
	}
	all := decodeOK[[]wire.Event](t, e.do(http.MethodGet, wire.PathEvents, tokRead, nil))
	if len(all) != 5 || all[0].Type != "dc_set" || all[1].Type != "host_registered" || all[1].Host != "h1" {
		t.Fatalf("events %+v", all)
	}
	for i, ev := range all {
		if ev.ID != uint64(i+1) || ev.Time.IsZero() || ev.Message == "" {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
	tests := []struct {
		q    string
		want []uint64 // ids; nil for an error
	}{
		{"?since=0", []uint64{1, 2, 3, 4, 5}},
		{"?since=3", []uint64{4, 5}},
		{"?since=5", []uint64{}},
		{"?since=99", []uint64{}},
		{"?limit=2", []uint64{1, 2}},
		{"?since=1&limit=2", []uint64{2, 3}},
		{"?limit=0", []uint64{1, 2, 3, 4, 5}},
		{"?limit=1000", []uint64{1, 2, 3, 4, 5}},
		{"?since=x", nil},
		{"?since=-1", nil},
		{"?since=1.5", nil},
		{"?limit=-1", nil},
		{"?limit=1001", nil},
		{"?limit=ten", nil},
		{"?limit=99999999999999999999", nil},
	}
	for _, tc := range tests {
		t.Run(tc.q, func(t *testing.T) {
			r := e.do(http.MethodGet, wire.PathEvents+tc.q, tokRead, nil)
			if tc.want == nil {
				checkError(t, r, 400, wire.KindInvalidRequest)
				return
			}
			got := []uint64{}
			for _, ev := range decodeOK[[]wire.Event](t, r) {
				got = append(got, ev.ID)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("ids %v, want %v", got, tc.want)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	e := newEnv(t)
	e.setDC("fra", wire.DatacenterUpdate{SlotLimit: ptr(1)})
	mustOK(t, e.do(http.MethodPost, wire.PathHeartbeat, tokAgent, wire.Heartbeat{HostID: "h1", Datacenter: "fra", Kernel: "6.12.85", Phase: wire.PhaseStaged}))
	e.heartbeat("h2", "fra")
	mustOK(t, e.do(http.MethodPost, wire.PathSlotAcquire, tokAgent, wire.SlotRequest{HostID: "h1", Datacenter: "fra"}))
	st := decodeOK[wire.Status](t, e.do(http.MethodGet, wire.PathStatus, tokRead, nil))
	if st.Leader != "c1" || len(st.Members) != 1 || !st.Members[0].Leader || st.Members[0].HTTPAddr != e.srv.Listener.Addr().String() {
		t.Fatalf("status members: %+v leader %q", st.Members, st.Leader)
	}
	if len(st.Datacenters) != 1 || st.Datacenters[0].Hosts != 2 || st.Datacenters[0].SlotsHeld != 1 || st.Datacenters[0].Serving != 1 {
		t.Fatalf("status datacenters: %+v", st.Datacenters)
	}
	if st.Phases["fra"][wire.PhaseStaged] != 1 || st.Phases["fra"][wire.PhaseIdle] != 1 || st.Kernels["fra"]["6.12.85"] != 1 {
		t.Fatalf("status phases %v kernels %v", st.Phases, st.Kernels)
	}
	checkError(t, e.do(http.MethodGet, wire.PathStatus, "", nil), 401, wire.KindUnauthorized)
	checkError(t, e.do(http.MethodGet, wire.PathStatus, "Bearer", nil), 401, wire.KindUnauthorized)
	r := e.do(http.MethodGet, wire.PathStatus, "", nil, "Authorization", "Basic YWxpY2U6cHc=")
	checkError(t, r, 401, wire.KindUnauthorized)
}

// TestMembersShape pins krollctl cluster members --output json:
// [{"id","raft_addr","http_addr","leader","voter"}].
func TestMembersShape(t *testing.T) {
	e := newEnv(t)
	r := e.do(http.MethodGet, wire.PathMembers, tokRead, nil)
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal(decodeOK[json.RawMessage](t, r), &raw); err != nil || len(raw) != 1 {
		t.Fatalf("members %s: %v", r.body, err)
	}
	var keys []string
	for k := range raw[0] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"http_addr", "id", "leader", "raft_addr", "voter"}; !slices.Equal(keys, want) {
		t.Fatalf("member keys %v, want %v", keys, want)
	}
	m := decodeOK[[]wire.Member](t, r)[0]
	if m.ID != "c1" || m.RaftAddr == "" || m.HTTPAddr != e.srv.Listener.Addr().String() || !m.Leader || !m.Voter {
		t.Fatalf("member %+v", m)
	}
	if string(raw[0]["leader"]) != "true" || string(raw[0]["voter"]) != "true" {
		t.Fatalf("leader/voter are not JSON booleans: %s", r.body)
	}
	checkError(t, e.do(http.MethodGet, wire.PathMembers, tokAgent, nil), 403, wire.KindForbidden)
	checkError(t, e.do(http.MethodPost, wire.PathJoin, tokOperate, wire.JoinRequest{ID: "c2", RaftAddr: "127.0.0.1:1"}), 403, wire.KindForbidden)
	checkError(t, e.do(http.MethodPost, wire.PathJoin, tokAdmin, wire.JoinRequest{ID: "c2"}), 400, wire.KindInvalidRequest)
	checkError(t, e.do(http.MethodPost, wire.PathRemove, tokAdmin, `{"id":""}`), 400, wire.KindInvalidRequest)
}

func TestProbesAndMetrics(t *testing.T) {
	e := newEnv(t)
	e.setDC("fra", wire.DatacenterUpdate{SlotLimit: ptr(1)})
	e.heartbeat("h1", "fra")
	e.heartbeat("h2", "fra")
	mustOK(t, e.do(http.MethodPost, wire.PathSlotAcquire, tokAgent, wire.SlotRequest{HostID: "h1", Datacenter: "fra"}))
	checkError(t, e.do(http.MethodPost, wire.PathSlotAcquire, tokAgent, wire.SlotRequest{HostID: "h2", Datacenter: "fra"}), 409, wire.KindSemaphoreFull)

	for _, path := range []string{"/healthz", "/readyz"} {
		m := decodeOK[map[string]string](t, e.do(http.MethodGet, path, "", nil))
		if m["node"] != "c1" {
			t.Fatalf("%s: %v", path, m)
		}
	}
	if m := decodeOK[map[string]string](t, e.do(http.MethodGet, "/readyz", "", nil)); m["leader"] != "c1" || m["status"] != "ready" {
		t.Fatalf("readyz: %v", m)
	}

	r := e.do(http.MethodGet, "/metrics", "", nil)
	mustOK(t, r)
	body := string(r.body)
	for _, want := range []string{
		`kroll_raft_state{state="Leader"} 1`,
		`kroll_slots_held{datacenter="fra"} 1`,
		`kroll_hosts{datacenter="fra"} 2`,
		`kroll_datacenter_paused{datacenter="fra"} 0`,
		`kroll_hosts_phase{datacenter="fra",phase="idle"} 2`,
		`kroll_hosts_kernel{datacenter="fra",kernel="unknown",kernel_line=""} 2`,
		`kroll_hosts_silent{datacenter="fra"} 0`,
		`kroll_hosts_unhealthy{datacenter="fra"} 0`,
		`kroll_build_info{binary="kroll-coordinator",commit="`,
		`kroll_api_requests_total{code="200",route="POST /api/v1/agent/slot/acquire"} 1`,
		`kroll_api_requests_total{code="409",route="POST /api/v1/agent/slot/acquire"} 1`,
		`kroll_slot_decisions_total{reason="granted"} 1`,
		`kroll_slot_decisions_total{reason="semaphore_full"} 1`,
		`kroll_raft_term `,
		`kroll_raft_index{index="applied_index"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestUnknownRoutes(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		method, path string
		status       int
		kind         string
		allow        string
	}{
		{"GET", "/nope", 404, wire.KindNotFound, ""},
		{"GET", "/api/v1/nope", 404, wire.KindNotFound, ""},
		{"GET", "/api/v1/datacenters/", 404, wire.KindNotFound, ""},
		{"GET", "/api/v1/hosts/a/b", 404, wire.KindNotFound, ""},
		{"POST", "/v1/nope", 404, wire.KindNotFound, ""},
		{"GET", wire.PathFleetLockPreReboot, 405, wire.KindMethodNotAllowed, "POST"},
		{"DELETE", wire.PathDatacenter + "fra", 405, wire.KindMethodNotAllowed, "GET, PUT"},
		{"POST", wire.PathHosts, 405, wire.KindMethodNotAllowed, "GET"},
		{"PUT", "/healthz", 405, wire.KindMethodNotAllowed, "GET"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := e.do(tc.method, tc.path, tokAdmin, nil)
			checkError(t, r, tc.status, tc.kind)
			if got := r.header.Get("Allow"); tc.allow != "" && !strings.HasPrefix(got, tc.allow) {
				t.Fatalf("Allow %q, want %q", got, tc.allow)
			}
		})
	}
}

func TestDebugPprofAdminsOnly(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		token  string
		status int
		kind   string
	}{
		{"", 401, wire.KindUnauthorized},
		{tokAgent, 403, wire.KindForbidden},
		{tokRead, 403, wire.KindForbidden},
		{tokAdmin, 200, ""},
	}
	for _, tc := range tests {
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
			r := e.do(http.MethodGet, path, tc.token, nil)
			if tc.status != 200 {
				checkError(t, r, tc.status, tc.kind)
				continue
			}
			mustOK(t, r)
			if len(r.body) == 0 {
				t.Fatalf("%s: empty profile", path)
			}
		}
	}
	if r := e.do(http.MethodGet, "/debug/pprof/goroutine?debug=1", tokAdmin, nil); !strings.Contains(string(r.body), "goroutine profile:") {
		t.Fatalf("goroutine profile: %.200s", r.body)
	}
}
