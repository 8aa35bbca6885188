package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/api"
	"github.com/kroll-dev/kroll/internal/testpki"
	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/wire"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestTLSCluster runs three coordinator nodes through the real main with
// TLS: HTTPS with client certificates, Raft and forwarding over mutual TLS.
// Agents must use certificates, operators use tokens, plain HTTP fails.
// With --peer-tls-ca, node certificates come from the peer CA and a
// kroll:peer certificate of the client CA is refused on /internal/*.
func TestTLSCluster(t *testing.T) {
	for _, tc := range []struct {
		name           string
		separatePeerCA bool
	}{{"one-ca", false}, {"separate-peer-ca", true}} {
		t.Run(tc.name, func(t *testing.T) { testTLSCluster(t, tc.separatePeerCA) })
	}
}

func testTLSCluster(t *testing.T, separatePeerCA bool) {
	ca := testpki.NewCA(t)
	peerCA := ca
	if separatePeerCA {
		peerCA = testpki.NewCA(t)
	}
	const opsToken = "ops-token-0123456789abcdef"
	dir := t.TempDir()
	config := filepath.Join(dir, "coordinator.toml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`
[[auth.tokens]]
name = "ops"
role = "admin"
sha256 = %q
[[auth.tokens]]
name = "agents"
role = "agent"
sha256 = %q
`, api.HashToken(opsToken), api.HashToken("agent-token-0123456789"))), 0o600); err != nil {
		t.Fatal(err)
	}
	raft, httpAddr := map[string]string{}, map[string]string{}
	var peers []string
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("c%d", i)
		raft[id], httpAddr[id] = freeAddr(t), freeAddr(t)
		peers = append(peers, id+"="+raft[id])
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 3)
	for id := range raft {
		nodeDir := filepath.Join(dir, id)
		os.MkdirAll(nodeDir, 0o700)
		cert, key, peerCAFile := peerCA.WriteFiles(t, nodeDir, peerCA.Issue(t, "peer", id))
		clientCAFile := filepath.Join(nodeDir, "client-ca.pem")
		if err := os.WriteFile(clientCAFile, ca.PEM, 0o600); err != nil {
			t.Fatal(err)
		}
		args := []string{"--node-id", id, "--data-dir", filepath.Join(nodeDir, "data"), "--raft-addr", raft[id],
			"--http-addr", httpAddr[id], "--peers", strings.Join(peers, ","), "--config", config,
			"--tls-cert", cert, "--tls-key", key, "--tls-ca", clientCAFile}
		if separatePeerCA {
			args = append(args, "--peer-tls-ca", peerCAFile)
		}
		go func() {
			env := cli.Env{Name: "kroll-coordinator", Stdout: io.Discard, Stderr: io.Discard, Getenv: os.Getenv}
			done <- run(ctx, env, args)
		}()
	}
	t.Cleanup(func() {
		cancel()
		for range 3 {
			if err := <-done; err != nil {
				t.Errorf("node exited: %v", err)
			}
		}
	})

	agentTLS := &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "agent", "h1")}, RootCAs: peerCA.Pool, MinVersion: tls.VersionTLS12}
	opsTLS := &tls.Config{RootCAs: peerCA.Pool, MinVersion: tls.VersionTLS12}
	ops, err := client.New("https://"+httpAddr["c1"], client.Options{Token: opsToken, TLS: opsTLS})
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the quorum serves writes through c1 (leader or not).
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := ops.SetDatacenter(t.Context(), "fra1", wire.DatacenterUpdate{SlotLimit: ptrInt(1)})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write through c1: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Agents with certificates, on every node (followers forward over mTLS).
	for id, addr := range httpAddr {
		agent, err := client.New("https://"+addr, client.Options{TLS: agentTLS})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := agent.Heartbeat(t.Context(), wire.Heartbeat{HostID: "h1", Datacenter: "fra1", Phase: wire.PhaseIdle}); err != nil {
			t.Fatalf("agent heartbeat via %s: %v", id, err)
		}
		if _, err := agent.Heartbeat(t.Context(), wire.Heartbeat{HostID: "h2", Datacenter: "fra1"}); client.ErrorKind(err) != wire.KindForbidden {
			t.Fatalf("certificate of h1 acting for h2 via %s: %v, want forbidden", id, err)
		}
	}
	// An agent token is refused when the coordinator runs TLS.
	tokAgent, _ := client.New("https://"+httpAddr["c2"], client.Options{Token: "agent-token-0123456789", TLS: opsTLS})
	if _, err := tokAgent.Heartbeat(t.Context(), wire.Heartbeat{HostID: "h1", Datacenter: "fra1"}); client.ErrorKind(err) != wire.KindUnauthorized {
		t.Fatalf("agent token under TLS: %v, want unauthorized", err)
	}
	// Plain HTTP to a TLS node does not get an answer.
	if resp, err := http.Get("http://" + httpAddr["c3"] + "/healthz"); err == nil && resp.StatusCode == http.StatusOK {
		t.Fatal("plain HTTP served by a TLS coordinator")
	}
	hosts, err := ops.Hosts(t.Context(), "fra1")
	if err != nil || len(hosts) != 1 || hosts[0].ID != "h1" {
		t.Fatalf("hosts %+v %v", hosts, err)
	}
	// /internal/* takes only a member's certificate from the peer CA.
	type badCert struct {
		name string
		cert tls.Certificate
		want int
	}
	bads := []badCert{{"peer-ca-unknown-id", peerCA.Issue(t, "peer", "c9"), http.StatusForbidden}}
	if separatePeerCA {
		// With one CA this would be c1's own, legitimate, certificate.
		bads = append(bads, badCert{"client-ca-claims-peer-c1", ca.Issue(t, "peer", "c1"), http.StatusUnauthorized})
	}
	for _, bad := range bads {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{bad.cert}, RootCAs: peerCA.Pool, MinVersion: tls.VersionTLS12}}}
		resp, err := hc.Post("https://"+httpAddr["c1"]+"/internal/v1/apply", "application/json", strings.NewReader(`{"type":"set_datacenter","payload":{"name":"evil","update":{"slot_pct":100}}}`))
		if err != nil {
			t.Fatalf("%s: %v", bad.name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != bad.want {
			t.Errorf("%s: HTTP %d on /internal/v1/apply, want %d", bad.name, resp.StatusCode, bad.want)
		}
	}
	// The Raft port takes only peer-CA certificates: with separate CAs a
	// kroll:peer:c1 certificate of the client CA is refused there too.
	raftCerts := []struct {
		name string
		cert tls.Certificate
		ok   bool
	}{{"peer-ca-c2", peerCA.Issue(t, "peer", "c2"), true}}
	if separatePeerCA {
		raftCerts = append(raftCerts, struct {
			name string
			cert tls.Certificate
			ok   bool
		}{"client-ca-claims-peer-c1", ca.Issue(t, "peer", "c1"), false})
	}
	for _, rc := range raftCerts {
		if err := tlsRaftDial(raft["c1"], rc.cert, peerCA); (err == nil) != rc.ok {
			t.Errorf("%s at the Raft port: %v, want accepted %v", rc.name, err, rc.ok)
		}
	}
	if dcs, err := ops.Datacenters(t.Context()); err != nil || len(dcs) != 1 {
		t.Errorf("datacenters %+v %v, want fra1 only", dcs, err)
	}
}

func ptrInt(v int) *int { return &v }

// tlsRaftDial connects to a Raft port with cert and reports whether the
// node refused it: nil when the connection stays open (the node waits for
// an RPC), the error of the node's TLS alert otherwise.
func tlsRaftDial(addr string, cert tls.Certificate, peerCA *testpki.CA) error {
	conn, err := tls.Dial("tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: peerCA.Pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		return err
	}
	defer conn.Close()
	// Under TLS 1.3 the server's verdict on the client certificate
	// arrives after the client's handshake: read it.
	conn.SetReadDeadline(time.Now().Add(time.Second))
	_, err = conn.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return nil
	}
	if err == nil {
		return nil
	}
	return err
}

// syncBuffer is a bytes.Buffer safe for a node's logger and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestWarnsWithoutPeerCA: under TLS without --peer-tls-ca the node warns
// at start that the agents' CA also vouches for peers; with it, it does
// not.
func TestWarnsWithoutPeerCA(t *testing.T) {
	for _, separate := range []bool{false, true} {
		t.Run(fmt.Sprintf("peer-tls-ca %v", separate), func(t *testing.T) {
			ca, peerCA := testpki.NewCA(t), testpki.NewCA(t)
			dir := t.TempDir()
			signer := ca
			if separate {
				signer = peerCA
			}
			cert, key, signerFile := signer.WriteFiles(t, dir, signer.Issue(t, "peer", "c1"))
			raft := freeAddr(t)
			args := []string{"--node-id", "c1", "--data-dir", filepath.Join(dir, "data"), "--raft-addr", raft,
				"--http-addr", freeAddr(t), "--peers", "c1=" + raft, "--tls-cert", cert, "--tls-key", key}
			if separate {
				clientCA := filepath.Join(dir, "client-ca.pem")
				if err := os.WriteFile(clientCA, ca.PEM, 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--tls-ca", clientCA, "--peer-tls-ca", signerFile)
			} else {
				args = append(args, "--tls-ca", signerFile)
			}
			stderr := &syncBuffer{}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() {
				done <- run(ctx, cli.Env{Name: "kroll-coordinator", Stdout: io.Discard, Stderr: stderr, Getenv: os.Getenv}, args)
			}()
			for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "serving"); time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					cancel()
					t.Fatalf("node did not start: %s", stderr.String())
				}
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if warned := strings.Contains(stderr.String(), "no --peer-tls-ca"); warned == separate {
				t.Fatalf("warned %v, want %v: %s", warned, !separate, stderr.String())
			}
		})
	}
}

// TestOwnCertificateMustProveNodeID: a node whose certificate does not
// carry kroll:peer:<its id> would be refused by every peer; it refuses to
// start instead.
func TestOwnCertificateMustProveNodeID(t *testing.T) {
	ca := testpki.NewCA(t)
	for _, tc := range []struct {
		name string
		uris []string
	}{
		{"no-uri", nil},
		{"other-node", []string{"kroll:peer:c2"}},
		{"agent-role", []string{"kroll:agent:c1"}},
		{"two-identities", []string{"kroll:peer:c1", "kroll:admin:ops"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cert, key, caFile := ca.WriteFiles(t, dir, ca.IssueURIs(t, "c1", tc.uris...))
			raft := freeAddr(t)
			args := []string{"--node-id", "c1", "--data-dir", filepath.Join(dir, "data"), "--raft-addr", raft,
				"--http-addr", freeAddr(t), "--peers", "c1=" + raft, "--tls-cert", cert, "--tls-key", key, "--tls-ca", caFile}
			env := cli.Env{Name: "kroll-coordinator", Stdout: io.Discard, Stderr: io.Discard, Getenv: os.Getenv}
			err := run(t.Context(), env, args)
			if err == nil || !strings.Contains(err.Error(), "kroll:peer") {
				t.Fatalf("run: %v, want a refusal naming kroll:peer", err)
			}
		})
	}
}
