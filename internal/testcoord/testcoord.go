// Package testcoord runs a real single-node coordinator (Raft store on
// disk + HTTP API) inside a test process, for agent and end-to-end tests.
package testcoord

import (
	"crypto/ed25519"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/api"
	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/coordinator/store"
	"github.com/kroll-dev/kroll/internal/testpki"
	"github.com/kroll-dev/kroll/pkg/client"
)

// Tokens of the test coordinator.
const (
	OperatorToken = "operator-secret-token"
	AgentToken    = "agent-secret-token"
)

// Options configure a test coordinator.
type Options struct {
	// CA, when set, makes the coordinator serve TLS with a certificate for
	// 127.0.0.1 and IPs, and agents authenticate with client certificates.
	CA  *testpki.CA
	IPs []string
	// ReleaseKeys and PolicyKeys are the trusted release and policy keys.
	ReleaseKeys, PolicyKeys []ed25519.PublicKey
	// Timing of slots; defaults suit a VM's kexec.
	Timing fsm.Timing
	// HeartbeatInterval told to agents; default 2s.
	HeartbeatInterval time.Duration
}

// Coordinator is a running test coordinator.
type Coordinator struct {
	// URL is how the host reaches it; Port its TCP port.
	URL, Port string
	// Client is an operator (admin) client.
	Client *client.Client
	Store  *store.Store
	// Stop shuts the coordinator down before the test ends (idempotent).
	Stop func()
}

// Start runs a coordinator until the test ends.
func Start(t testing.TB, o Options) *Coordinator {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	raftLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	raftAddr := raftLn.Addr().String()
	raftLn.Close()
	if o.Timing == (fsm.Timing{}) {
		o.Timing = fsm.Timing{Lease: 2 * time.Minute, RebootDeadline: 10 * time.Minute, AliveWithin: time.Minute}
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = 2 * time.Second
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(store.Config{
		NodeID: "c1", DataDir: t.TempDir(), RaftAddr: raftAddr, HTTPAddr: ln.Addr().String(),
		Peers: map[string]string{"c1": raftAddr}, Timing: o.Timing, TickInterval: time.Second, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !st.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("testcoord: single-node coordinator did not become leader")
		}
		time.Sleep(50 * time.Millisecond)
	}
	auth := &api.Auth{AgentCertificates: o.CA != nil}
	for _, tk := range []struct {
		name, tok string
		role      api.Role
	}{{"ops", OperatorToken, api.RoleAdmin}, {"agents", AgentToken, api.RoleAgent}} {
		tok, err := api.NewToken(tk.name, tk.role, api.HashToken(tk.tok))
		if err != nil {
			t.Fatal(err)
		}
		auth.Tokens = append(auth.Tokens, tok)
	}
	h := api.New(api.Config{Store: st, Auth: auth, HeartbeatInterval: o.HeartbeatInterval, ReleaseKeys: o.ReleaseKeys, PolicyKeys: o.PolicyKeys, Logger: quiet})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	c := &Coordinator{Store: st}
	_, c.Port, _ = net.SplitHostPort(ln.Addr().String())
	opts := client.Options{Token: OperatorToken}
	if o.CA != nil {
		cert := o.CA.IssueIPs(t, "coordinator", append([]string{"127.0.0.1"}, o.IPs...))
		srvTLS := &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: o.CA.Pool, ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12}
		go srv.Serve(tls.NewListener(ln, srvTLS))
		c.URL = "https://" + ln.Addr().String()
		opts.TLS = &tls.Config{RootCAs: o.CA.Pool, MinVersion: tls.VersionTLS12}
	} else {
		go srv.Serve(ln)
		c.URL = "http://" + ln.Addr().String()
	}
	var once sync.Once
	c.Stop = func() { once.Do(func() { srv.Close(); st.Close() }) }
	t.Cleanup(c.Stop)
	c.Client, err = client.New(c.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
