package api

import (
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/internal/testpki"
	"github.com/kroll-dev/kroll/pkg/wire"
)

func TestHeartbeatRegisters(t *testing.T) {
	e := newEnv(t)
	e.setDC("fra", wire.DatacenterUpdate{SlotLimit: ptr(1)})
	hb := wire.Heartbeat{
		HostID: "h1", Datacenter: "fra", KernelLine: "6.12", Kernel: "6.12.85", Phase: wire.PhaseIdle, BootID: "b1",
		Policies: []wire.PolicyStatus{{ID: "copy-fail", Version: 3, State: "enforcing"}},
	}
	ds := decodeOK[wire.DesiredState](t, e.do(http.MethodPost, wire.PathHeartbeat, tokAgent, hb))
	if ds.HeartbeatIntervalSeconds != 10 || ds.Slot != nil {
		t.Fatalf("desired state %+v", ds)
	}
	hosts := decodeOK[[]wire.Host](t, e.do(http.MethodGet, wire.PathHosts, tokRead, nil))
	if len(hosts) != 1 || hosts[0].ID != "h1" || hosts[0].Datacenter != "fra" || hosts[0].Kernel != "6.12.85" ||
		!hosts[0].Alive || len(hosts[0].Policies) != 1 {
		t.Fatalf("hosts %+v", hosts)
	}
	h := decodeOK[wire.Host](t, e.do(http.MethodGet, wire.PathHost+"h1", tokRead, nil))
	if h.Phase != wire.PhaseIdle || h.KernelLine != "6.12" {
		t.Fatalf("host %+v", h)
	}

	// Holding a slot shows in the heartbeat's desired state.
	sl := decodeOK[wire.Slot](t, e.do(http.MethodPost, wire.PathSlotAcquire, tokAgent, wire.SlotRequest{HostID: "h1", Datacenter: "fra"}))
	ds = decodeOK[wire.DesiredState](t, e.do(http.MethodPost, wire.PathHeartbeat, tokAgent, hb))
	if ds.Slot == nil || ds.Slot.Token != sl.Token {
		t.Fatalf("desired state %+v, want slot with token %d", ds, sl.Token)
	}
}

func TestHeartbeatValidation(t *testing.T) {
	e := newEnv(t)
	long := strings.Repeat("x", 257)
	tests := []struct {
		name   string
		token  string
		body   any
		status int
		kind   string
	}{
		{"no credentials", "", wire.Heartbeat{HostID: "h1", Datacenter: "fra"}, 401, wire.KindUnauthorized},
		{"read token", tokRead, wire.Heartbeat{HostID: "h1", Datacenter: "fra"}, 403, wire.KindForbidden},
		{"empty body", tokAgent, "", 400, wire.KindInvalidRequest},
		{"missing host", tokAgent, wire.Heartbeat{Datacenter: "fra"}, 400, wire.KindInvalidRequest},
		{"invalid datacenter", tokAgent, wire.Heartbeat{HostID: "h1", Datacenter: "a b"}, 400, wire.KindInvalidRequest},
		{"unknown phase", tokAgent, wire.Heartbeat{HostID: "h1", Datacenter: "fra", Phase: "napping"}, 400, wire.KindInvalidRequest},
		{"long kernel", tokAgent, wire.Heartbeat{HostID: "h1", Datacenter: "fra", Kernel: long}, 400, wire.KindInvalidRequest},
		{"bad policy state", tokAgent, wire.Heartbeat{HostID: "h1", Datacenter: "fra", Policies: []wire.PolicyStatus{{ID: "p", State: "on"}}}, 400, wire.KindInvalidRequest},
		{"bad desired_version", tokAgent, wire.Heartbeat{HostID: "h1", Datacenter: "fra", DesiredVersion: "v1"}, 400, wire.KindInvalidRequest},
		{"unknown field", tokAgent, `{"host_id":"h1","datacenter":"fra","uptime":3}`, 400, wire.KindInvalidRequest},
		{"trailing data", tokAgent, `{"host_id":"h1","datacenter":"fra"} {}`, 400, wire.KindInvalidRequest},
		{"too large", tokAgent, `{"host_id":"h1","datacenter":"fra","kernel":"` + strings.Repeat("x", wire.MaxBodySize) + `"}`, 413, wire.KindRequestTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkError(t, e.do(http.MethodPost, wire.PathHeartbeat, tc.token, tc.body), tc.status, tc.kind)
		})
	}
	if hosts := decodeOK[[]wire.Host](t, e.do(http.MethodGet, wire.PathHosts, tokRead, nil)); len(hosts) != 0 {
		t.Fatalf("hosts after invalid heartbeats: %+v", hosts)
	}
}

// TestSlotLifecycle: acquire, renew and release with fencing tokens that
// strictly increase across grants.
func TestSlotLifecycle(t *testing.T) {
	e := newEnv(t)
	e.setDC("fra", wire.DatacenterUpdate{SlotLimit: ptr(2)})
	for _, h := range []string{"h1", "h2", "h3"} {
		e.heartbeat(h, "fra")
	}
	// A datacenter nobody configured registers no host.
	checkError(t, e.do(http.MethodPost, wire.PathHeartbeat, tokAgent, wire.Heartbeat{HostID: "h4", Datacenter: "ams"}), http.StatusNotFound, wire.KindUnknownDatacenter)

	// Token choices for a step.
	const (
		none  = iota
		held  // the host's current token
		stale // a token the host does not hold
	)
	tokens := map[string]uint64{} // host → its latest token
	holding := map[string]bool{}
	var last uint64 // the latest grant's token
	steps := []struct {
		name   string
		path   string
		host   string
		dc     string
		token  int
		status int
		kind   string
	}{
		{"acquire h1", wire.PathSlotAcquire, "h1", "fra", none, 200, ""},
		{"renew h1 stale token", wire.PathSlotRenew, "h1", "fra", stale, 409, wire.KindStaleToken},
		{"renew h1", wire.PathSlotRenew, "h1", "fra", held, 200, ""},
		{"release h1 wrong token", wire.PathSlotRelease, "h1", "fra", stale, 409, wire.KindStaleToken},
		{"acquire h1 again is recursive", wire.PathSlotAcquire, "h1", "fra", none, 200, ""},
		{"acquire h2", wire.PathSlotAcquire, "h2", "fra", none, 200, ""},
		{"acquire h3, limit 2", wire.PathSlotAcquire, "h3", "fra", none, 409, wire.KindSemaphoreFull},
		{"release h2", wire.PathSlotRelease, "h2", "fra", held, 200, ""},
		{"release h2 again", wire.PathSlotRelease, "h2", "fra", held, 409, wire.KindNotHolder},
		{"renew h2 after release", wire.PathSlotRenew, "h2", "fra", held, 409, wire.KindNotHolder},
		{"acquire h3", wire.PathSlotAcquire, "h3", "fra", none, 200, ""},
		{"acquire h2, full again", wire.PathSlotAcquire, "h2", "fra", none, 409, wire.KindSemaphoreFull},
		{"release h1", wire.PathSlotRelease, "h1", "fra", held, 200, ""},
		{"acquire h2 after h1 released", wire.PathSlotAcquire, "h2", "fra", none, 200, ""},
		{"acquire h1, full", wire.PathSlotAcquire, "h1", "fra", none, 409, wire.KindSemaphoreFull},
		{"unregistered host", wire.PathSlotAcquire, "h9", "fra", none, 409, wire.KindUnknownHost},
		{"host of another datacenter", wire.PathSlotAcquire, "h1", "ams", none, 409, wire.KindUnknownHost},
		{"datacenter not configured", wire.PathSlotAcquire, "h4", "ams", none, 409, wire.KindUnknownDC},
		{"renew in unknown datacenter", wire.PathSlotRenew, "h4", "ams", stale, 404, wire.KindNotFound},
		{"acquire with a token", wire.PathSlotAcquire, "h3", "fra", held, 400, wire.KindInvalidRequest},
		{"renew without token", wire.PathSlotRenew, "h3", "fra", none, 400, wire.KindInvalidRequest},
		{"release without token", wire.PathSlotRelease, "h3", "fra", none, 400, wire.KindInvalidRequest},
	}
	for _, s := range steps {
		req := wire.SlotRequest{HostID: s.host, Datacenter: s.dc}
		switch s.token {
		case held:
			req.Token = tokens[s.host]
		case stale:
			req.Token = tokens[s.host] + 1000
		}
		r := e.do(http.MethodPost, s.path, tokAgent, req)
		if s.kind != "" {
			checkError(t, r, s.status, s.kind)
			continue
		}
		sl := decodeOK[wire.Slot](t, r)
		if sl.HostID != s.host || sl.Datacenter != s.dc || sl.Owner != "agent" || sl.Token == 0 || !sl.LeaseExpires.After(sl.Granted) {
			t.Fatalf("%s: slot %+v", s.name, sl)
		}
		switch {
		case s.path != wire.PathSlotAcquire:
			if sl.Token != tokens[s.host] {
				t.Fatalf("%s: token %d, want %d", s.name, sl.Token, tokens[s.host])
			}
		case holding[s.host]: // a recursive acquire keeps the token
			if sl.Token != tokens[s.host] {
				t.Fatalf("%s: recursive acquire changed the token from %d to %d", s.name, tokens[s.host], sl.Token)
			}
		default: // a fresh grant
			if sl.Token <= last {
				t.Fatalf("%s: token %d does not exceed the previous grant's %d", s.name, sl.Token, last)
			}
			last, tokens[s.host], holding[s.host] = sl.Token, sl.Token, true
		}
		if s.path == wire.PathSlotRelease {
			holding[s.host] = false
		}
	}
}

func TestBodyTooLarge(t *testing.T) {
	e := newEnv(t)
	big := `{"host_id":"h1","datacenter":"fra","detail":"` + strings.Repeat("x", wire.MaxBodySize) + `"}`
	for _, path := range []string{wire.PathHeartbeat, wire.PathSlotAcquire, wire.PathSlotRenew, wire.PathSlotRelease, wire.PathHealth, wire.PathSlotsRelease} {
		t.Run(path, func(t *testing.T) {
			checkError(t, e.do(http.MethodPost, path, tokAdmin, big), http.StatusRequestEntityTooLarge, wire.KindRequestTooLarge)
		})
	}
	t.Run("PUT datacenter", func(t *testing.T) {
		checkError(t, e.do(http.MethodPut, wire.PathDatacenter+"fra", tokAdmin, big), http.StatusRequestEntityTooLarge, wire.KindRequestTooLarge)
	})
	// Exactly the limit is read (and rejected only as JSON).
	exact := make([]byte, wire.MaxBodySize)
	for i := range exact {
		exact[i] = ' '
	}
	checkError(t, e.do(http.MethodPost, wire.PathHeartbeat, tokAgent, exact), http.StatusBadRequest, wire.KindInvalidRequest)
}

func TestHealthReportFailureBudget(t *testing.T) {
	e := newEnv(t)
	e.setDC("fra", wire.DatacenterUpdate{SlotLimit: ptr(3), FailureBudget: ptr(2)})
	for _, h := range []string{"h1", "h2", "h3"} {
		e.heartbeat(h, "fra")
	}
	// Unhealthy reports count with the token of the host's slot.
	tokens := map[string]uint64{}
	for _, h := range []string{"h1", "h2"} {
		tokens[h] = decodeOK[wire.Slot](t, e.do(http.MethodPost, wire.PathSlotAcquire, tokAgent, wire.SlotRequest{HostID: h, Datacenter: "fra"})).Token
	}
	health := func(host string, healthy bool) response {
		return e.do(http.MethodPost, wire.PathHealth, tokAgent, wire.HealthReport{HostID: host, Datacenter: "fra", Token: tokens[host], Healthy: healthy, Kernel: "6.12.85", Detail: "systemd degraded"})
	}
	mustOK(t, health("h1", true))
	mustOK(t, health("h1", false))
	dc := decodeOK[wire.Datacenter](t, e.do(http.MethodGet, wire.PathDatacenter+"fra", tokRead, nil))
	if dc.Paused || dc.Failures != 1 {
		t.Fatalf("after one unhealthy report (budget 2): %+v", dc)
	}
	if h := decodeOK[wire.Host](t, e.do(http.MethodGet, wire.PathHost+"h1", tokRead, nil)); !h.Unhealthy || h.Kernel != "6.12.85" {
		t.Fatalf("host after unhealthy report: %+v", h)
	}
	mustOK(t, health("h2", false))
	dc = decodeOK[wire.Datacenter](t, e.do(http.MethodGet, wire.PathDatacenter+"fra", tokRead, nil))
	if !dc.Paused || dc.Failures != 2 || !strings.Contains(dc.PauseReason, "failure budget") {
		t.Fatalf("after two unhealthy reports (budget 2): %+v", dc)
	}
	checkError(t, e.do(http.MethodPost, wire.PathSlotAcquire, tokAgent, wire.SlotRequest{HostID: "h3", Datacenter: "fra"}), http.StatusConflict, wire.KindPaused)

	// Resume resets the failure count.
	dc = decodeOK[wire.Datacenter](t, e.do(http.MethodPost, wire.PathDatacenter+"fra"+wire.PathDatacenterResume, tokOperate, nil))
	if dc.Paused || dc.Failures != 0 || dc.PauseReason != "" {
		t.Fatalf("after resume: %+v", dc)
	}

	tests := []struct {
		name   string
		rep    wire.HealthReport
		status int
		kind   string
	}{
		{"unregistered host", wire.HealthReport{HostID: "h9", Datacenter: "fra"}, 404, wire.KindNotFound},
		{"wrong datacenter", wire.HealthReport{HostID: "h1", Datacenter: "ams"}, 404, wire.KindNotFound},
		{"stale token", wire.HealthReport{HostID: "h1", Datacenter: "fra", Token: 99}, 409, wire.KindStaleToken},
		{"invalid host", wire.HealthReport{HostID: "", Datacenter: "fra"}, 400, wire.KindInvalidRequest},
		{"detail too long", wire.HealthReport{HostID: "h1", Datacenter: "fra", Detail: strings.Repeat("d", 4097)}, 400, wire.KindInvalidRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkError(t, e.do(http.MethodPost, wire.PathHealth, tokAgent, tc.rep), tc.status, tc.kind)
		})
	}
}

// TestClientCertificateIdentity runs the API over mutual TLS: a client
// certificate's kroll:ROLE:NAME URI is the caller's identity, and an agent
// certificate acts only for its own host.
func TestClientCertificateIdentity(t *testing.T) {
	e := newEnv(t)
	e.setDC("fra", wire.DatacenterUpdate{SlotLimit: ptr(2)})
	e.heartbeat("h2", "fra")

	pki := testpki.NewCA(t)
	srv := httptest.NewUnstartedServer(e.api)
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{pki.Issue(t, "", "coordinator")},
		ClientCAs:    pki.Pool, ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12,
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake refused below
	srv.StartTLS()
	t.Cleanup(srv.Close)
	client := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pki.Pool, Certificates: certs, MinVersion: tls.VersionTLS12},
		}}
	}
	h1 := client(pki.IssueURIs(t, "h1", "kroll:agent:h1"))
	reader := client(pki.IssueURIs(t, "rita", "kroll:read:rita"))
	noCert := client()
	badURI := client(pki.IssueURIs(t, "x", "kroll:root:x"))
	noURI := client(pki.IssueURIs(t, "y", "spiffe://example.org/y"))

	fl := func(id string) wire.FleetLockRequest { return flBody(id, "fra") }
	tests := []struct {
		name   string
		c      *http.Client
		method string
		path   string
		token  string
		body   any
		status int
		kind   string
	}{
		{"h1 heartbeat for h1", h1, "POST", wire.PathHeartbeat, "", wire.Heartbeat{HostID: "h1", Datacenter: "fra"}, 200, ""},
		{"h1 heartbeat for h2", h1, "POST", wire.PathHeartbeat, "", wire.Heartbeat{HostID: "h2", Datacenter: "fra"}, 403, wire.KindForbidden},
		{"h1 acquire for h2", h1, "POST", wire.PathSlotAcquire, "", wire.SlotRequest{HostID: "h2", Datacenter: "fra"}, 403, wire.KindForbidden},
		{"h1 renew for h2", h1, "POST", wire.PathSlotRenew, "", wire.SlotRequest{HostID: "h2", Datacenter: "fra", Token: 1}, 403, wire.KindForbidden},
		{"h1 release for h2", h1, "POST", wire.PathSlotRelease, "", wire.SlotRequest{HostID: "h2", Datacenter: "fra", Token: 1}, 403, wire.KindForbidden},
		{"h1 health for h2", h1, "POST", wire.PathHealth, "", wire.HealthReport{HostID: "h2", Datacenter: "fra"}, 403, wire.KindForbidden},
		{"h1 pre-reboot for h2", h1, "POST", wire.PathFleetLockPreReboot, "", fl("h2"), 403, wire.KindForbidden},
		{"h1 steady-state for h2", h1, "POST", wire.PathFleetLockSteady, "", fl("h2"), 403, wire.KindForbidden},
		{"h1 acquire for h1", h1, "POST", wire.PathSlotAcquire, "", wire.SlotRequest{HostID: "h1", Datacenter: "fra"}, 200, ""},
		{"h1 reads hosts", h1, "GET", wire.PathHosts, "", nil, 403, wire.KindForbidden},
		{"h1 sets a datacenter", h1, "PUT", wire.PathDatacenter + "fra", "", wire.DatacenterUpdate{SlotLimit: ptr(9)}, 403, wire.KindForbidden},
		{"reader reads hosts", reader, "GET", wire.PathHosts, "", nil, 200, ""},
		{"reader heartbeat", reader, "POST", wire.PathHeartbeat, "", wire.Heartbeat{HostID: "rita", Datacenter: "fra"}, 403, wire.KindForbidden},
		{"no certificate", noCert, "POST", wire.PathHeartbeat, "", wire.Heartbeat{HostID: "h1", Datacenter: "fra"}, 401, wire.KindUnauthorized},
		{"unknown role in URI", badURI, "GET", wire.PathHosts, "", nil, 401, wire.KindUnauthorized},
		{"no kroll URI", noURI, "GET", wire.PathHosts, "", nil, 401, wire.KindUnauthorized},
		{"token wins over certificate", h1, "POST", wire.PathHeartbeat, tokAgent, wire.Heartbeat{HostID: "h2", Datacenter: "fra"}, 200, ""},
		{"no certificate, token", noCert, "POST", wire.PathHeartbeat, tokAgent, wire.Heartbeat{HostID: "h2", Datacenter: "fra"}, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var header []string
			if strings.HasPrefix(tc.path, "/v1/") {
				header = []string{flHeader, "true"}
			}
			r := doRequest(t, tc.c, srv.URL, tc.method, tc.path, tc.token, tc.body, header...)
			if tc.kind == "" {
				mustOK(t, r)
				return
			}
			checkError(t, r, tc.status, tc.kind)
		})
	}
	// The refused requests changed nothing: h2 holds no slot.
	if h := decodeOK[wire.Host](t, e.do(http.MethodGet, wire.PathHost+"h2", tokRead, nil)); h.Slot != nil {
		t.Fatalf("h2 got a slot through h1's certificate: %+v", h.Slot)
	}

	// A certificate from another CA is refused in the handshake.
	other := testpki.NewCA(t)
	c := client(other.IssueURIs(t, "h1", "kroll:agent:h1"))
	if resp, err := c.Get(srv.URL + wire.PathHosts); err == nil {
		resp.Body.Close()
		t.Fatalf("certificate of an unknown CA: status %d, want a handshake failure", resp.StatusCode)
	}
}

// TestHeartbeatInstallPhases: the install phases are accepted and shown.
func TestHeartbeatInstallPhases(t *testing.T) {
	e := newEnv(t)
	e.setDC("fra", wire.DatacenterUpdate{SlotLimit: ptr(1)})
	for _, phase := range []string{wire.PhaseInstalling, wire.PhaseInstallFailed} {
		hb := wire.Heartbeat{HostID: "h1", Datacenter: "fra", KernelLine: "6.12", Kernel: "6.12.85", Phase: phase, BootID: "b1"}
		decodeOK[wire.DesiredState](t, e.do(http.MethodPost, wire.PathHeartbeat, tokAgent, hb))
		if h := decodeOK[wire.Host](t, e.do(http.MethodGet, wire.PathHost+"h1", tokRead, nil)); h.Phase != phase {
			t.Fatalf("host phase %q, want %q", h.Phase, phase)
		}
	}
}
