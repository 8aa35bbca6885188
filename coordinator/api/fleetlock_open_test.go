package api

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// newFleetLockEnv is newEnv with [fleetlock] access, serving on a
// listener of the given address ("127.0.0.1:0", "[::1]:0").
func newFleetLockEnv(t *testing.T, access FleetLockAccess, listen string) *env {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	srv.Listener.Close()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = ln
	st := openLeader(t, t.TempDir(), ln.Addr().String())
	e := &env{t: t, store: st, api: New(Config{Store: st, Auth: testAuth(t), Logger: discardLogger, PeerToken: tokPeer, FleetLock: access}), srv: srv}
	srv.Config.Handler = e.api
	srv.Start()
	t.Cleanup(srv.Close)
	return e
}

// zincati sends a FleetLock request exactly as stock Zincati does: the
// fleet-lock-protocol header and the JSON body, no credentials. extra
// adds headers (name, value, ...).
func zincati(t *testing.T, e *env, path, id, group string, extra ...string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(`{"client_params":{"id":"`+id+`","group":"`+group+`"}}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("fleet-lock-protocol", "true")
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Set(extra[i], extra[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

// holders lists the FleetLock slot holders of dc.
func (e *env) holders(dc string) []string {
	e.t.Helper()
	var ids []string
	if d, ok := e.dcState(dc); ok {
		for _, s := range d.Slots {
			ids = append(ids, s.Host)
		}
	}
	return ids
}

func mustAccess(t *testing.T, cidrs, groups []string) FleetLockAccess {
	t.Helper()
	a, err := NewFleetLockAccess(cidrs, groups)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestFleetLockWithoutCredentials: stock Zincati (header and body, no
// credentials) from an allowed source network takes and releases the
// lock over real HTTP against a real Raft store, on IPv4 and IPv6.
func TestFleetLockWithoutCredentials(t *testing.T) {
	for _, c := range []struct{ name, listen, network string }{
		{"ipv4", "127.0.0.1:0", "127.0.0.0/8"},
		{"ipv6", "[::1]:0", "::1/128"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newFleetLockEnv(t, mustAccess(t, []string{"10.0.0.0/8", c.network}, nil), c.listen)
			e.setDC("fra", wire.DatacenterUpdate{SlotLimit: ptr(1)})
			const id = "3ad2f1a0c6e44f55b0f7d2e1c9a8b7f6" // Zincati's app-specific machine id
			if r := zincati(t, e, wire.PathFleetLockPreReboot, id, "fra"); r.status != 200 || string(r.body) != "{}\n" {
				t.Fatalf("pre-reboot: status %d body %q, want 200 {}", r.status, r.body)
			}
			if h := e.holders("fra"); len(h) != 1 || h[0] != id {
				t.Fatalf("holders after pre-reboot %v, want [%s]", h, id)
			}
			// The datacenter's limit holds for these clients too.
			checkError(t, zincati(t, e, wire.PathFleetLockPreReboot, "other-node", "fra"), http.StatusConflict, wire.KindSemaphoreFull)
			if r := zincati(t, e, wire.PathFleetLockSteady, id, "fra"); r.status != 200 {
				t.Fatalf("steady-state: status %d body %q", r.status, r.body)
			}
			if h := e.holders("fra"); len(h) != 0 {
				t.Fatalf("holders after steady-state %v, want none", h)
			}
			// The protocol's checks are unchanged.
			req := func(header ...string) response {
				return e.do(http.MethodPost, wire.PathFleetLockPreReboot, "", flBody(id, "fra"), header...)
			}
			checkError(t, req(), http.StatusBadRequest, wire.KindMissingHeader)
			checkError(t, e.do(http.MethodPost, wire.PathFleetLockPreReboot, "", `{"client_params":{"id":"../x","group":"fra"}}`, flHeader, "true"), http.StatusBadRequest, wire.KindInvalidClientParams)
		})
	}
}

// TestFleetLockOpenOnlyThere: everything but FleetLock from an allowed
// network still needs credentials; FleetLock from other networks too;
// credentials sent are checked as always; X-Forwarded-For is ignored; and
// [fleetlock] groups limits the open groups.
func TestFleetLockOpenOnlyThere(t *testing.T) {
	open := newFleetLockEnv(t, mustAccess(t, []string{"127.0.0.1/32"}, []string{"fra", "ams"}), "127.0.0.1:0")
	closed := newFleetLockEnv(t, mustAccess(t, []string{"10.0.0.0/8", "192.168.0.0/16"}, nil), "127.0.0.1:0")
	none := newFleetLockEnv(t, FleetLockAccess{}, "127.0.0.1:0")
	for _, e := range []*env{open, closed, none} {
		e.setDC("fra", wire.DatacenterUpdate{SlotLimit: ptr(2)})
		e.setDC("par", wire.DatacenterUpdate{SlotLimit: ptr(2)})
	}
	zincatiOK := func(e *env) func(path, id, group string, h ...string) response {
		return func(path, id, group string, h ...string) response { return zincati(t, e, path, id, group, h...) }
	}
	for _, c := range []struct {
		name   string
		do     func() response
		status int
		kind   string
	}{
		{"open: pre-reboot", func() response { return zincatiOK(open)(wire.PathFleetLockPreReboot, "n1", "fra") }, 200, ""},
		{"open: steady-state", func() response { return zincatiOK(open)(wire.PathFleetLockSteady, "n1", "fra") }, 200, ""},
		{"open: group not listed", func() response { return zincatiOK(open)(wire.PathFleetLockPreReboot, "n2", "par") }, 403, wire.KindForbidden},
		{"open: group not listed, steady-state", func() response { return zincatiOK(open)(wire.PathFleetLockSteady, "n2", "par") }, 403, wire.KindForbidden},
		{"open: agent token, group not listed", func() response {
			return open.do(http.MethodPost, wire.PathFleetLockPreReboot, tokAgent, flBody("n3", "par"), flHeader, "true")
		}, 200, ""},
		{"open: unknown token", func() response {
			return zincatiOK(open)(wire.PathFleetLockPreReboot, "n4", "fra", "Authorization", "Bearer nope")
		}, 401, wire.KindUnauthorized},
		{"open: malformed Authorization", func() response {
			return zincatiOK(open)(wire.PathFleetLockPreReboot, "n4", "fra", "Authorization", "Basic eDp5")
		}, 401, wire.KindUnauthorized},
		{"open: read token", func() response {
			return open.do(http.MethodPost, wire.PathFleetLockPreReboot, tokRead, flBody("n4", "fra"), flHeader, "true")
		}, 403, wire.KindForbidden},
		{"open: heartbeat", func() response {
			return open.do(http.MethodPost, wire.PathHeartbeat, "", wire.Heartbeat{HostID: "n5", Datacenter: "fra", Phase: wire.PhaseIdle})
		}, 401, wire.KindUnauthorized},
		{"open: slot acquire", func() response {
			return open.do(http.MethodPost, wire.PathSlotAcquire, "", wire.SlotRequest{HostID: "n5", Datacenter: "fra"})
		}, 401, wire.KindUnauthorized},
		{"open: slot release", func() response {
			return open.do(http.MethodPost, wire.PathSlotRelease, "", wire.SlotRequest{HostID: "n5", Datacenter: "fra"})
		}, 401, wire.KindUnauthorized},
		{"open: status", func() response { return open.do(http.MethodGet, wire.PathStatus, "", nil) }, 401, wire.KindUnauthorized},
		{"open: slots", func() response { return open.do(http.MethodGet, wire.PathSlots, "", nil) }, 401, wire.KindUnauthorized},
		{"open: set datacenter", func() response {
			return open.do(http.MethodPut, wire.PathDatacenter+"fra", "", wire.DatacenterUpdate{SlotLimit: ptr(9)})
		}, 401, wire.KindUnauthorized},
		{"open: pause datacenter", func() response {
			return open.do(http.MethodPost, wire.PathDatacenter+"fra"+wire.PathDatacenterPause, "", nil)
		}, 401, wire.KindUnauthorized},
		{"open: join", func() response { return open.do(http.MethodPost, wire.PathJoin, "", wire.JoinRequest{}) }, 401, wire.KindUnauthorized},
		{"open: internal apply", func() response { return open.do(http.MethodPost, pathInternalApply, "", "{}") }, 401, wire.KindUnauthorized},
		{"other network: pre-reboot", func() response { return zincatiOK(closed)(wire.PathFleetLockPreReboot, "n6", "fra") }, 401, wire.KindUnauthorized},
		{"other network: steady-state", func() response { return zincatiOK(closed)(wire.PathFleetLockSteady, "n6", "fra") }, 401, wire.KindUnauthorized},
		{"other network: X-Forwarded-For of an allowed one", func() response {
			return zincatiOK(closed)(wire.PathFleetLockPreReboot, "n6", "fra", "X-Forwarded-For", "10.1.2.3", "X-Real-IP", "10.1.2.3", "Forwarded", "for=10.1.2.3")
		}, 401, wire.KindUnauthorized},
		{"other network: agent token", func() response {
			return closed.do(http.MethodPost, wire.PathFleetLockPreReboot, tokAgent, flBody("n7", "fra"), flHeader, "true")
		}, 200, ""},
		{"not configured: pre-reboot", func() response { return zincatiOK(none)(wire.PathFleetLockPreReboot, "n8", "fra") }, 401, wire.KindUnauthorized},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := c.do()
			if c.kind != "" {
				checkError(t, r, c.status, c.kind)
			} else if r.status != c.status {
				t.Fatalf("status %d, want %d; body %s", r.status, c.status, r.body)
			}
		})
	}
	// Only the requests answered 200 took locks: n3 in par (agent token)
	// on open, n7 in fra on closed; n1 took and released its own.
	for _, c := range []struct {
		e    *env
		dc   string
		want string
	}{{open, "fra", ""}, {open, "par", "n3"}, {closed, "fra", "n7"}, {closed, "par", ""}, {none, "fra", ""}} {
		if got := strings.Join(c.e.holders(c.dc), ","); got != c.want {
			t.Errorf("holders of %s: %q, want %q", c.dc, got, c.want)
		}
	}
}

// TestNewFleetLockAccess: the [fleetlock] settings are validated with one
// clear error naming the entry; the peer address decides, IPv4-mapped
// IPv6 addresses count as IPv4.
func TestNewFleetLockAccess(t *testing.T) {
	for _, c := range []struct {
		name          string
		cidrs, groups []string
		err           string
	}{
		{name: "empty"},
		{name: "networks", cidrs: []string{"10.0.0.0/8", "192.168.1.0/24", "2001:db8::/32", "10.9.8.7/32"}},
		{name: "networks and groups", cidrs: []string{"10.0.0.0/8"}, groups: []string{"fra", "ams-2"}},
		{name: "not a CIDR", cidrs: []string{"10.0.0.0/8", "ten"}, err: `allow_unauthenticated_from[1]: netip.ParsePrefix("ten")`},
		{name: "bare address", cidrs: []string{"10.0.0.5"}, err: `"10.0.0.5" is an address, not a network: write 10.0.0.5/32`},
		{name: "bare IPv6 address", cidrs: []string{"2001:db8::1"}, err: `write 2001:db8::1/128`},
		{name: "host bits", cidrs: []string{"10.1.2.3/8"}, err: `"10.1.2.3/8" has host bits set: the network is 10.0.0.0/8`},
		{name: "prefix too long", cidrs: []string{"10.0.0.0/33"}, err: `allow_unauthenticated_from[0]`},
		{name: "everything", cidrs: []string{"0.0.0.0/0"}, err: "would open FleetLock to every address"},
		{name: "everything IPv6", cidrs: []string{"::/0"}, err: "would open FleetLock to every address"},
		{name: "mapped", cidrs: []string{"::ffff:10.0.0.0/104"}, err: "IPv4-mapped IPv6 network"},
		{name: "zone", cidrs: []string{"fe80::%eth0/64"}, err: "allow_unauthenticated_from[0]"},
		{name: "groups without networks", groups: []string{"fra"}, err: "it needs allow_unauthenticated_from"},
		{name: "bad group", cidrs: []string{"10.0.0.0/8"}, groups: []string{"fra", "a b"}, err: `groups[1]: "a b" is not a valid name`},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, err := NewFleetLockAccess(c.cidrs, c.groups)
			if c.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(a.AllowUnauthenticatedFrom) != len(c.cidrs) || len(a.Groups) != len(c.groups) {
					t.Fatalf("got %+v from %v %v", a, c.cidrs, c.groups)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("err %v, want one containing %q", err, c.err)
			}
		})
	}

	a := mustAccess(t, []string{"10.0.0.0/8", "2001:db8::/32"}, nil)
	for _, c := range []struct {
		remote string
		want   string
	}{
		{"10.1.2.3:41000", "10.1.2.3"},
		{"[::ffff:10.1.2.3]:41000", "10.1.2.3"},
		{"[2001:db8::7]:41000", "2001:db8::7"},
		{"[fe80::1%eth0]:41000", ""},
		{"11.1.2.3:41000", ""},
		{"127.0.0.1:41000", ""},
		{"[::1]:41000", ""},
		{"10.1.2.3", ""}, // no port: not a TCP peer address
		{"", ""},
		{"@", ""}, // a unix socket's peer
	} {
		r := httptest.NewRequest(http.MethodPost, wire.PathFleetLockPreReboot, nil)
		r.RemoteAddr = c.remote
		ip, ok := a.source(r)
		if got := map[bool]string{true: ip.String(), false: ""}[ok]; got != c.want {
			t.Errorf("source(%q) = %q, want %q", c.remote, got, c.want)
		}
		id, ok := a.identify(r)
		if ok != (c.want != "") || (ok && (id.Role != RoleAgent || id.Via != viaNetwork || id.Name != "fleetlock@"+c.want)) {
			t.Errorf("identify(%q) = %+v, %v", c.remote, id, ok)
		}
	}
	if _, ok := (FleetLockAccess{}).source(&http.Request{RemoteAddr: "10.1.2.3:1"}); ok {
		t.Error("the zero FleetLockAccess opened FleetLock")
	}
}

// hostDC returns the datacenter host is registered in ("" when unknown).
func (e *env) hostDC(host string) string {
	e.t.Helper()
	var dc string
	e.store.FSM().View(func(st *fsm.State) {
		if h := st.Hosts[host]; h != nil {
			dc = h.Datacenter
		}
	})
	return dc
}

// TestFleetLockNotForAgentHosts: a request without credentials cannot
// take or give back a FleetLock slot for a host a kroll agent registered,
// nor can one with credentials (the state machine refuses it); the agent
// keeps taking its own slot. Before, a credential-less pre-reboot for the
// agent's id took a FleetLock slot in its name and locked the agent out.
func TestFleetLockNotForAgentHosts(t *testing.T) {
	e := newFleetLockEnv(t, mustAccess(t, []string{"127.0.0.1/32"}, []string{"fra"}), "127.0.0.1:0")
	e.setDC("fra", wire.DatacenterUpdate{SlotLimit: ptr(2)})
	e.heartbeat("edge-17", "fra")
	for _, c := range []struct {
		name    string
		do      func() response
		status  int
		kind    string
		holders string
	}{
		{"no credentials: pre-reboot", func() response { return zincati(t, e, wire.PathFleetLockPreReboot, "edge-17", "fra") }, 409, wire.KindConflict, ""},
		{"no credentials: steady-state", func() response { return zincati(t, e, wire.PathFleetLockSteady, "edge-17", "fra") }, 409, wire.KindConflict, ""},
		{"agent token: pre-reboot", func() response {
			return e.do(http.MethodPost, wire.PathFleetLockPreReboot, tokAgent, flBody("edge-17", "fra"), flHeader, "true")
		}, 409, wire.KindConflict, ""},
		{"agent token: steady-state", func() response {
			return e.do(http.MethodPost, wire.PathFleetLockSteady, tokAgent, flBody("edge-17", "fra"), flHeader, "true")
		}, 409, wire.KindConflict, ""},
		{"the agent takes its slot", func() response {
			return e.do(http.MethodPost, wire.PathSlotAcquire, tokAgent, wire.SlotRequest{HostID: "edge-17", Datacenter: "fra"})
		}, 200, "", "edge-17"},
		{"no credentials: steady-state while the agent holds", func() response { return zincati(t, e, wire.PathFleetLockSteady, "edge-17", "fra") }, 409, wire.KindConflict, "edge-17"},
		{"a Zincati node locks beside it", func() response { return zincati(t, e, wire.PathFleetLockPreReboot, "zinc-1", "fra") }, 200, "", "edge-17,zinc-1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := c.do()
			if c.kind != "" {
				checkError(t, r, c.status, c.kind)
			} else if r.status != c.status {
				t.Fatalf("status %d, want %d; body %s", r.status, c.status, r.body)
			}
			h := e.holders("fra")
			slices.Sort(h)
			if got := strings.Join(h, ","); got != c.holders {
				t.Fatalf("holders of fra %q, want %q", got, c.holders)
			}
		})
	}
	var owner string
	if d, ok := e.dcState("fra"); ok && d.Slots["edge-17"] != nil {
		owner = d.Slots["edge-17"].Owner
	}
	if owner != fsm.OwnerAgent {
		t.Fatalf("edge-17's slot is owned by %q, want the agent", owner)
	}
}

// TestFleetLockNoMoveWithoutCredentials: [fleetlock] groups cannot be
// bypassed by naming an open group for a host registered in another: a
// request without credentials never moves a registered host (409) and
// its current datacenter decides; a request with credentials still moves
// a FleetLock-only host that holds no slot, as Zincati does when its
// group changes.
func TestFleetLockNoMoveWithoutCredentials(t *testing.T) {
	e := newFleetLockEnv(t, mustAccess(t, []string{"127.0.0.1/32"}, []string{"ams"}), "127.0.0.1:0")
	for _, dc := range []string{"fra", "ams"} {
		e.setDC(dc, wire.DatacenterUpdate{SlotLimit: ptr(2)})
	}
	agentFL := func(path, id, group string) func() response {
		return func() response { return e.do(http.MethodPost, path, tokAgent, flBody(id, group), flHeader, "true") }
	}
	open := func(path, id, group string) func() response {
		return func() response { return zincati(t, e, path, id, group) }
	}
	for _, c := range []struct {
		name   string
		do     func() response
		status int
		kind   string
		dc     string // where zinc-1 is registered after
	}{
		{"agent token: zinc-1 locks in fra", agentFL(wire.PathFleetLockPreReboot, "zinc-1", "fra"), 200, "", "fra"},
		{"no credentials: fra is not open", open(wire.PathFleetLockSteady, "zinc-1", "fra"), 403, wire.KindForbidden, "fra"},
		{"no credentials: pre-reboot naming ams while holding in fra", open(wire.PathFleetLockPreReboot, "zinc-1", "ams"), 409, wire.KindConflict, "fra"},
		{"agent token: zinc-1 gives it back", agentFL(wire.PathFleetLockSteady, "zinc-1", "fra"), 200, "", "fra"},
		{"no credentials: pre-reboot naming ams", open(wire.PathFleetLockPreReboot, "zinc-1", "ams"), 409, wire.KindConflict, "fra"},
		{"no credentials: steady-state naming ams", open(wire.PathFleetLockSteady, "zinc-1", "ams"), 409, wire.KindConflict, "fra"},
		{"no credentials: a new id registers in ams", open(wire.PathFleetLockPreReboot, "zinc-2", "ams"), 200, "", "fra"},
		{"agent token: naming ams moves zinc-1", agentFL(wire.PathFleetLockPreReboot, "zinc-1", "ams"), 200, "", "ams"},
		{"no credentials: now in ams, steady-state", open(wire.PathFleetLockSteady, "zinc-1", "ams"), 200, "", "ams"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := c.do()
			if c.kind != "" {
				checkError(t, r, c.status, c.kind)
			} else if r.status != c.status {
				t.Fatalf("status %d, want %d; body %s", r.status, c.status, r.body)
			}
			if got := e.hostDC("zinc-1"); got != c.dc {
				t.Fatalf("zinc-1 registered in %q, want %q", got, c.dc)
			}
		})
	}
	if got, want := strings.Join(e.holders("ams"), ","), "zinc-2"; got != want {
		t.Fatalf("holders of ams %q, want %q", got, want)
	}
	if h := e.holders("fra"); len(h) != 0 {
		t.Fatalf("holders of fra %v, want none", h)
	}
}
