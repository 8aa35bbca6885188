package client

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// recorded is one request as the test server saw it.
type recorded struct {
	Method, Path, Query, Body string
	Header                    http.Header
}

// fake is a coordinator stand-in that answers every request with one
// canned status and body and records what it got.
type fake struct {
	mu     sync.Mutex
	status int
	body   string
	reqs   []recorded
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, recorded{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, string(body), r.Header.Clone()})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(f.status)
	io.WriteString(w, f.body)
}

func (f *fake) respond(status int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status, f.body, f.reqs = status, body, nil
}

func (f *fake) last(t *testing.T) recorded {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) != 1 {
		t.Fatalf("server got %d requests, want 1", len(f.reqs))
	}
	return f.reqs[0]
}

func newFake(t *testing.T, opts Options) (*fake, *Client) {
	t.Helper()
	f := &fake{status: 200, body: "{}"}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

var t0 = time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC)

func TestRoutes(t *testing.T) {
	ctx := context.Background()
	f, c := newFake(t, Options{Token: "s3cret"})
	ptr := func(i int) *int { return &i }
	tier := "edge"

	tests := []struct {
		name     string
		respBody string
		call     func() (any, error)
		method   string
		path     string
		query    string
		reqBody  string // "" = no body
		want     any
	}{
		{"status", `{"leader":"c1","members":[{"id":"c1","leader":true,"voter":true}]}`,
			func() (any, error) { return c.Status(ctx) },
			"GET", "/api/v1/status", "", "",
			&wire.Status{Leader: "c1", Members: []wire.Member{{ID: "c1", Leader: true, Voter: true}}}},
		{"members", `[{"id":"c1","raft_addr":"a:1","http_addr":"a:2","leader":true,"voter":true}]`,
			func() (any, error) { return c.Members(ctx) },
			"GET", "/api/v1/cluster/members", "", "",
			[]wire.Member{{ID: "c1", RaftAddr: "a:1", HTTPAddr: "a:2", Leader: true, Voter: true}}},
		{"join", `[]`,
			func() (any, error) {
				return c.Join(ctx, wire.JoinRequest{ID: "c4", RaftAddr: "10.0.0.4:7001", HTTPAddr: "10.0.0.4:8001"})
			},
			"POST", "/api/v1/cluster/join", "", `{"id":"c4","raft_addr":"10.0.0.4:7001","http_addr":"10.0.0.4:8001"}`,
			[]wire.Member{}},
		{"remove", `null`,
			func() (any, error) { return c.Remove(ctx, "c2") },
			"POST", "/api/v1/cluster/remove", "", `{"id":"c2"}`,
			[]wire.Member(nil)},
		{"datacenters", `[{"name":"fra1","tier":"edge","min_healthy_pct":90,"window":"","paused":false,"failure_budget":3,"failures":0,"hosts":4,"serving":4,"slots_held":0,"effective_limit":1}]`,
			func() (any, error) { return c.Datacenters(ctx) },
			"GET", "/api/v1/datacenters", "", "",
			[]wire.Datacenter{{Name: "fra1", Tier: "edge", MinHealthyPct: 90, FailureBudget: 3, Hosts: 4, Serving: 4, EffectiveLimit: 1}}},
		{"datacenter-escaped", `{"name":"a/b c"}`,
			func() (any, error) { return c.Datacenter(ctx, "a/b c") },
			"GET", "/api/v1/datacenters/a%2Fb%20c", "", "",
			&wire.Datacenter{Name: "a/b c"}},
		{"set-datacenter-only-given-fields", `{"name":"fra1","slot_limit":2}`,
			func() (any, error) {
				return c.SetDatacenter(ctx, "fra1", wire.DatacenterUpdate{SlotLimit: ptr(2), Tier: &tier, MinHealthyPct: ptr(0)})
			},
			"PUT", "/api/v1/datacenters/fra1", "", `{"tier":"edge","slot_limit":2,"min_healthy_pct":0}`,
			&wire.Datacenter{Name: "fra1", SlotLimit: 2}},
		{"pause", `{"name":"fra1","paused":true,"pause_reason":"bgp"}`,
			func() (any, error) { return c.Pause(ctx, "fra1", "bgp") },
			"POST", "/api/v1/datacenters/fra1/pause", "", `{"reason":"bgp"}`,
			&wire.Datacenter{Name: "fra1", Paused: true, PauseReason: "bgp"}},
		{"resume-escaped", `{"name":"x?y"}`,
			func() (any, error) { return c.Resume(ctx, "x?y") },
			"POST", "/api/v1/datacenters/x%3Fy/resume", "", "",
			&wire.Datacenter{Name: "x?y"}},
		{"slots-all", `[]`,
			func() (any, error) { return c.Slots(ctx, "") },
			"GET", "/api/v1/slots", "", "",
			[]wire.Slot{}},
		{"slots-dc", `[{"datacenter":"fra1","host_id":"h1","token":7,"granted":"2026-05-04T03:02:01Z","lease_expires":"0001-01-01T00:00:00Z","reboot_deadline":"0001-01-01T00:00:00Z","owner":"agent"}]`,
			func() (any, error) { return c.Slots(ctx, "fra 1&x") },
			"GET", "/api/v1/slots", "dc=fra+1%26x", "",
			[]wire.Slot{{Datacenter: "fra1", HostID: "h1", Token: 7, Granted: t0, Owner: "agent"}}},
		{"release-slot", `{"datacenter":"fra1","host_id":"h1","token":7,"owner":"agent","lost":true}`,
			func() (any, error) {
				return c.ReleaseSlot(ctx, wire.SlotReleaseRequest{Datacenter: "fra1", HostID: "h1", Reason: "dead disk"})
			},
			"POST", "/api/v1/slots/release", "", `{"datacenter":"fra1","host_id":"h1","reason":"dead disk"}`,
			&wire.Slot{Datacenter: "fra1", HostID: "h1", Token: 7, Owner: "agent", Lost: true}},
		{"hosts", `[{"id":"h1","datacenter":"fra1","last_heartbeat":"2026-05-04T03:02:01Z","alive":true}]`,
			func() (any, error) { return c.Hosts(ctx, "fra1") },
			"GET", "/api/v1/hosts", "dc=fra1", "",
			[]wire.Host{{ID: "h1", Datacenter: "fra1", LastHeartbeat: t0, Alive: true}}},
		{"host-escaped", `{"id":"h/1"}`,
			func() (any, error) { return c.Host(ctx, "h/1") },
			"GET", "/api/v1/hosts/h%2F1", "", "",
			&wire.Host{ID: "h/1"}},
		{"events-default", `[]`,
			func() (any, error) { return c.Events(ctx, 0, 0) },
			"GET", "/api/v1/events", "", "",
			[]wire.Event{}},
		{"events-since-limit", `[{"id":43,"time":"2026-05-04T03:02:01Z","type":"grant","message":"m"}]`,
			func() (any, error) { return c.Events(ctx, 42, 10) },
			"GET", "/api/v1/events", "limit=10&since=42", "",
			[]wire.Event{{ID: 43, Time: t0, Type: "grant", Message: "m"}}},
		{"heartbeat", `{"heartbeat_interval_seconds":15}`,
			func() (any, error) {
				return c.Heartbeat(ctx, wire.Heartbeat{HostID: "h1", Datacenter: "fra1", Phase: wire.PhaseIdle})
			},
			"POST", "/api/v1/agent/heartbeat", "", `{"host_id":"h1","datacenter":"fra1","phase":"idle"}`,
			&wire.DesiredState{HeartbeatIntervalSeconds: 15}},
		{"acquire", `{"datacenter":"fra1","host_id":"h1","token":8,"owner":"agent"}`,
			func() (any, error) { return c.AcquireSlot(ctx, wire.SlotRequest{HostID: "h1", Datacenter: "fra1"}) },
			"POST", "/api/v1/agent/slot/acquire", "", `{"host_id":"h1","datacenter":"fra1"}`,
			&wire.Slot{Datacenter: "fra1", HostID: "h1", Token: 8, Owner: "agent"}},
		{"renew", `{"datacenter":"fra1","host_id":"h1","token":8,"owner":"agent"}`,
			func() (any, error) {
				return c.RenewSlot(ctx, wire.SlotRequest{HostID: "h1", Datacenter: "fra1", Token: 8})
			},
			"POST", "/api/v1/agent/slot/renew", "", `{"host_id":"h1","datacenter":"fra1","token":8}`,
			&wire.Slot{Datacenter: "fra1", HostID: "h1", Token: 8, Owner: "agent"}},
		{"agent-release", `{"whatever":1}`,
			func() (any, error) {
				return nil, c.AgentRelease(ctx, wire.SlotRequest{HostID: "h1", Datacenter: "fra1", Token: 8})
			},
			"POST", "/api/v1/agent/slot/release", "", `{"host_id":"h1","datacenter":"fra1","token":8}`,
			nil},
		{"health", ``,
			func() (any, error) {
				return nil, c.ReportHealth(ctx, wire.HealthReport{HostID: "h1", Datacenter: "fra1", Token: 8, Healthy: true})
			},
			"POST", "/api/v1/agent/health", "", `{"host_id":"h1","datacenter":"fra1","token":8,"healthy":true}`,
			nil},
		{"pre-reboot", ``,
			func() (any, error) { return nil, c.PreReboot(ctx, "node-1", "fra1") },
			"POST", "/v1/pre-reboot", "", `{"client_params":{"id":"node-1","group":"fra1"}}`,
			nil},
		{"steady-state", ``,
			func() (any, error) { return nil, c.SteadyState(ctx, "node-1", "fra1") },
			"POST", "/v1/steady-state", "", `{"client_params":{"id":"node-1","group":"fra1"}}`,
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.respond(200, tt.respBody)
			got, err := tt.call()
			if err != nil {
				t.Fatal(err)
			}
			r := f.last(t)
			if r.Method != tt.method || r.Path != tt.path || r.Query != tt.query {
				t.Errorf("request %s %s?%s, want %s %s?%s", r.Method, r.Path, r.Query, tt.method, tt.path, tt.query)
			}
			if r.Body != tt.reqBody {
				t.Errorf("request body %s, want %s", r.Body, tt.reqBody)
			}
			if auth := r.Header.Get("Authorization"); auth != "Bearer s3cret" {
				t.Errorf("Authorization %q", auth)
			}
			if a := r.Header.Get("Accept"); a != "application/json" {
				t.Errorf("Accept %q", a)
			}
			if ct := r.Header.Get("Content-Type"); (tt.reqBody != "") != (ct == "application/json") {
				t.Errorf("Content-Type %q with body %q", ct, tt.reqBody)
			}
			fleetLock := strings.HasPrefix(tt.path, "/v1/")
			if h := r.Header.Get("fleet-lock-protocol"); (h == "true") != fleetLock {
				t.Errorf("fleet-lock-protocol header %q on %s", h, tt.path)
			}
			if tt.want != nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestNoToken(t *testing.T) {
	f, c := newFake(t, Options{})
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h, ok := f.last(t).Header["Authorization"]; ok {
		t.Fatalf("Authorization sent without a token: %q", h)
	}
}

func TestAPIErrors(t *testing.T) {
	long := strings.Repeat("x", 300)
	tests := []struct {
		name      string
		status    int
		body      string
		wantKind  string
		wantValue string
		wantText  string
	}{
		{"wire-error", 409, `{"kind":"failed_lock_semaphore_full","value":"fra1: 2 of 2 slots held"}`,
			wire.KindSemaphoreFull, "fra1: 2 of 2 slots held", "failed_lock_semaphore_full: fra1: 2 of 2 slots held (HTTP 409)"},
		{"no-leader", 503, `{"kind":"no_leader","value":"election in progress"}`,
			wire.KindNoLeader, "election in progress", "no_leader: election in progress (HTTP 503)"},
		{"plain-text", 502, "Bad Gateway from proxy\n",
			wire.KindInternal, "Bad Gateway from proxy", "internal: Bad Gateway from proxy (HTTP 502)"},
		{"long-html-truncated", 500, long,
			wire.KindInternal, long[:200], "internal: " + long[:200] + " (HTTP 500)"},
		{"empty-body", 404, "",
			wire.KindInternal, "Not Found", "internal: Not Found (HTTP 404)"},
		{"json-without-kind", 400, `{"error":"nope"}`,
			wire.KindInternal, `{"error":"nope"}`, `internal: {"error":"nope"} (HTTP 400)`},
	}
	f, c := newFake(t, Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.respond(tt.status, tt.body)
			err := c.PreReboot(context.Background(), "h1", "fra1")
			ae, ok := errors.AsType[*APIError](err)
			if !ok {
				t.Fatalf("error %v (%T), want *APIError", err, err)
			}
			if ae.Status != tt.status || ae.Kind != tt.wantKind || ae.Value != tt.wantValue {
				t.Errorf("got %+v", ae)
			}
			if err.Error() != tt.wantText {
				t.Errorf("Error() = %q, want %q", err.Error(), tt.wantText)
			}
			if ErrorKind(err) != tt.wantKind {
				t.Errorf("ErrorKind = %q", ErrorKind(err))
			}
		})
	}
}

func TestResponseErrors(t *testing.T) {
	huge := `"` + strings.Repeat("a", MaxResponseSize) + `"`
	tests := []struct {
		name, body, wantErr string
	}{
		{"bad-json", `{"leader":`, "decode response"},
		{"empty", ``, "decode response"},
		{"too-large", huge, "larger than"},
	}
	f, c := newFake(t, Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.respond(200, tt.body)
			_, err := c.Status(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || ErrorKind(err) != "" {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := New("http://"+addr, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Members(context.Background())
	if !errors.Is(err, syscall.ECONNREFUSED) || !strings.Contains(err.Error(), "http://"+addr+"/api/v1/cluster/members") {
		t.Fatalf("error %v, want connection refused naming the URL", err)
	}
}

func TestContextCanceled(t *testing.T) {
	_, c := newFake(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Status(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}

func TestNew(t *testing.T) {
	tlsCfg := &tls.Config{}
	tests := []struct {
		name    string
		url     string
		opts    Options
		wantErr string // "" = accepted
	}{
		{"http-loopback-token", "http://127.0.0.1:8001", Options{Token: "t"}, ""},
		{"http-localhost-token", "http://localhost:8001", Options{Token: "t"}, ""},
		{"http-ipv6-loopback-token", "http://[::1]:8001", Options{Token: "t"}, ""},
		{"http-remote-no-token", "http://10.0.0.1:8001", Options{}, ""},
		{"https-remote-token", "https://coord.example:8001", Options{Token: "t"}, ""},
		{"https-with-prefix", "https://coord.example/kroll/", Options{Token: "t", TLS: tlsCfg}, ""},
		{"http-remote-token", "http://10.0.0.1:8001", Options{Token: "t"}, "clear text"},
		{"http-name-token", "http://coord.example:8001", Options{Token: "t"}, "clear text"},
		{"http-localhost-lookalike", "http://localhost.evil.example", Options{Token: "t"}, "clear text"},
		{"tls-on-http", "http://127.0.0.1:8001", Options{TLS: tlsCfg}, "not https"},
		{"tls-and-httpclient", "https://c.example", Options{TLS: tlsCfg, HTTPClient: &http.Client{}}, "HTTPClient"},
		{"bad-scheme", "ftp://c.example", Options{}, "scheme"},
		{"no-scheme", "127.0.0.1:8001", Options{}, "coordinator URL"},
		{"no-host", "http://", Options{}, "no host"},
		{"userinfo", "https://u:p@c.example", Options{}, "credentials"},
		{"query", "https://c.example/?a=b", Options{}, "query"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.url, tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New(%q) = %v, want error containing %q", tt.url, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(%q): %v", tt.url, err)
			}
			if strings.HasSuffix(c.BaseURL(), "/") {
				t.Errorf("BaseURL %q ends in /", c.BaseURL())
			}
		})
	}
}

func TestBasePathPrefix(t *testing.T) {
	f := &fake{status: 200, body: "[]"}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c, err := New(srv.URL+"/kroll/", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Hosts(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	if p := f.last(t).Path; p != "/kroll/api/v1/hosts" {
		t.Fatalf("path %q", p)
	}
}

func TestRedirectToClearTextRefused(t *testing.T) {
	// The off-loopback target is never dialled: the check comes first.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/old" + wire.PathSlots:
			// A loopback redirect keeping the query is followed.
			http.Redirect(w, r, wire.PathSlots+"?"+r.URL.RawQuery, http.StatusTemporaryRedirect)
		case wire.PathSlots:
			io.WriteString(w, `[{"datacenter":"`+r.URL.Query().Get("dc")+`"}]`)
		default:
			http.Redirect(w, r, "http://coord.example"+r.URL.Path, http.StatusTemporaryRedirect)
		}
	}))
	defer srv.Close()
	c, err := New(srv.URL, Options{Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Status(context.Background())
	if err == nil || !strings.Contains(err.Error(), "refusing redirect to http://coord.example/api/v1/status") {
		t.Fatalf("error %v, want a refused redirect", err)
	}
	c, err = New(srv.URL+"/old", Options{Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	slots, err := c.Slots(context.Background(), "fra1")
	if err != nil || len(slots) != 1 || slots[0].Datacenter != "fra1" {
		t.Fatalf("loopback redirect: %v, %v", slots, err)
	}
}

func TestTimeout(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	c, err := New(srv.URL, Options{Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status(context.Background()); err == nil || !strings.Contains(err.Error(), "Timeout") {
		t.Fatalf("error %v, want a timeout", err)
	}
}

func TestTLSConfig(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(wire.Status{Leader: "c1"})
	}))
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pemCert(srv.Certificate().Raw), 0o644); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not pem"), 0o644); err != nil {
		t.Fatal(err)
	}

	errTests := []struct {
		name, ca, cert, key, wantErr string
	}{
		{"cert-without-key", "", "c.pem", "", "together"},
		{"key-without-cert", "", "", "k.pem", "together"},
		{"missing-ca", filepath.Join(dir, "nope.pem"), "", "", "no such file"},
		{"junk-ca", junk, "", "", "no PEM certificates"},
		{"missing-cert", "", filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), "client certificate"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := TLSConfig(tt.ca, tt.cert, tt.key); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
	if cfg, err := TLSConfig("", "", ""); cfg != nil || err != nil {
		t.Fatalf("TLSConfig with no files = %v, %v; want nil, nil", cfg, err)
	}

	cfg, err := TLSConfig(ca, "", "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(srv.URL, Options{TLS: cfg, Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(context.Background())
	if err != nil || st.Leader != "c1" {
		t.Fatalf("status over TLS: %v, %v", st, err)
	}
	// Without the CA the server's certificate is not trusted.
	c, _ = New(srv.URL, Options{})
	if _, err := c.Status(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted server: %v", err)
	}
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
