package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// certificatesBlockMarker precedes the shell block of docs/operations.md
// that TestDocumentedCertificates runs.
const certificatesBlockMarker = "<!-- TestDocumentedCertificates runs the next block -->"

// documentedBlock returns the ```sh block after marker in the runbook.
func documentedBlock(t *testing.T, marker string) string {
	t.Helper()
	doc, err := os.ReadFile("../../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), marker)
	if !ok {
		t.Fatalf("docs/operations.md has no %q", marker)
	}
	rest = strings.TrimLeft(rest, "\n")
	body, ok := strings.CutPrefix(rest, "```sh\n")
	if !ok {
		t.Fatalf("no ```sh block right after %q", marker)
	}
	block, _, ok := strings.Cut(body, "\n```")
	if !ok {
		t.Fatal("unterminated ```sh block")
	}
	return block
}

// TestDocumentedCertificates runs the runbook's openssl commands as
// written and starts a three-node TLS quorum with their output: Raft and
// forwarding over mutual TLS with the kroll:peer certificates of the peer
// CA, an agent with its kroll:agent certificate, operators by role
// (admin, operate, read) with their certificates of the client CA — no
// token configured at all.
func TestDocumentedCertificates(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatalf("openssl is needed (Debian package openssl): %v", err)
	}
	dir := t.TempDir()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", documentedBlock(t, certificatesBlockMarker))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NODES=c1=127.0.0.1 c2=127.0.0.1 c3=127.0.0.1", "AGENTS=edge-fra1-0042")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the documented openssl commands failed: %v\n%s", err, out)
	}
	file := func(name string) string { return filepath.Join(dir, name) }
	for _, key := range []string{"peer-ca.key", "client-ca.key", "c1.key", "edge-fra1-0042.key", "alice.key"} {
		if fi, err := os.Stat(file(key)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", key, err, fi.Mode().Perm())
		}
	}

	raftAddr, httpAddr := map[string]string{}, map[string]string{}
	var peers []string
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("c%d", i)
		raftAddr[id], httpAddr[id] = freeAddr(t), freeAddr(t)
		peers = append(peers, id+"="+raftAddr[id])
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 3)
	for id := range raftAddr {
		args := []string{"--node-id", id, "--data-dir", filepath.Join(dir, id+"-data"), "--raft-addr", raftAddr[id],
			"--http-addr", httpAddr[id], "--peers", strings.Join(peers, ","),
			"--tls-cert", file(id + ".pem"), "--tls-key", file(id + ".key"), "--tls-ca", file("client-ca.pem"), "--peer-tls-ca", file("peer-ca.pem")}
		go func() {
			env := cli.Env{Name: "kroll-coordinator", Stdout: io.Discard, Stderr: io.Discard, Getenv: func(string) string { return "" }}
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
	// as returns a client of node id with the certificate NAME.pem,
	// verifying the coordinator with the peer CA, as krollctl --tls-ca.
	as := func(id, name string) *client.Client {
		t.Helper()
		tc, err := client.TLSConfig(file("peer-ca.pem"), file(name+".pem"), file(name+".key"))
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.New("https://"+httpAddr[id], client.Options{TLS: tc})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	alice, bot, grafana := as("c1", "alice"), as("c2", "rollout-bot"), as("c3", "grafana")
	// The quorum elects a leader over mutual TLS with the peer
	// certificates; writes through c1 work once it has.
	slots := 1
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		_, err := alice.SetDatacenter(ctx, "fra1", wire.DatacenterUpdate{SlotLimit: &slots})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin certificate: no write through c1 within 30 s: %v", err)
		}
	}
	// Operate (through a follower or the leader: forwarded over mTLS).
	if _, err := bot.SetDatacenter(ctx, "fra1", wire.DatacenterUpdate{SlotLimit: &slots}); err != nil {
		t.Fatalf("operate certificate: dc set: %v", err)
	}
	if _, _, err := bot.SnapshotSave(ctx); err != nil {
		t.Fatalf("operate certificate: snapshot save: %v", err)
	}
	if _, err := bot.SnapshotRestore(ctx, []byte("x")); client.ErrorKind(err) != wire.KindForbidden {
		t.Fatalf("operate certificate: snapshot restore: %v; want forbidden (admin only)", err)
	}
	// Read.
	if dcs, err := grafana.Datacenters(ctx); err != nil || len(dcs) != 1 {
		t.Fatalf("read certificate: datacenters %+v, %v", dcs, err)
	}
	if _, err := grafana.SetDatacenter(ctx, "fra1", wire.DatacenterUpdate{SlotLimit: &slots}); client.ErrorKind(err) != wire.KindForbidden {
		t.Fatalf("read certificate: dc set: %v; want forbidden", err)
	}
	// The agent, on every node, for its own host only.
	for id := range httpAddr {
		agent := as(id, "edge-fra1-0042")
		if _, err := agent.Heartbeat(ctx, wire.Heartbeat{HostID: "edge-fra1-0042", Datacenter: "fra1", Phase: wire.PhaseIdle}); err != nil {
			t.Fatalf("agent certificate via %s: %v", id, err)
		}
		if _, err := agent.Heartbeat(ctx, wire.Heartbeat{HostID: "edge-fra1-0043", Datacenter: "fra1"}); client.ErrorKind(err) != wire.KindForbidden {
			t.Fatalf("agent certificate for another host via %s: %v; want forbidden", id, err)
		}
	}
	// A coordinator's certificate is no operator: kroll:peer is refused on
	// the operator API, and a client-CA certificate is no peer.
	if _, err := as("c1", "c2").SetDatacenter(ctx, "fra1", wire.DatacenterUpdate{SlotLimit: &slots}); client.ErrorKind(err) != wire.KindForbidden {
		t.Fatalf("peer certificate on the operator API: %v; want forbidden", err)
	}
	for _, tc := range []struct {
		name string
		cert string
		ok   bool
	}{{"peer-ca c2", "c2", true}, {"client-ca alice", "alice", false}} {
		cert, err := tls.LoadX509KeyPair(file(tc.cert+".pem"), file(tc.cert+".key"))
		if err != nil {
			t.Fatal(err)
		}
		if err := tlsRaftDialPEM(raftAddr["c1"], cert, file("peer-ca.pem")); (err == nil) != tc.ok {
			t.Errorf("%s at the Raft port: %v; want accepted %v", tc.name, err, tc.ok)
		}
	}
}

// tlsRaftDialPEM is tlsRaftDial verifying the node with a CA file.
func tlsRaftDialPEM(addr string, cert tls.Certificate, caFile string) error {
	tc, err := client.TLSConfig(caFile, "", "")
	if err != nil {
		return err
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: tc.RootCAs, MinVersion: tls.VersionTLS12})
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(time.Second))
	_, err = conn.Read(make([]byte, 1))
	if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
		return nil
	}
	return err
}
