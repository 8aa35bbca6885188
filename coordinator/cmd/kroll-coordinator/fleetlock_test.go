package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/api"
	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// TestZincatiEndToEnd runs a coordinator node from its command line and a
// configuration file with [fleetlock] allow_unauthenticated_from, and
// speaks to it as stock Zincati does (the header and the JSON body,
// nothing else): the lock is taken and released, the operator API still
// answers 401 without credentials. A bad network stops the start.
func TestZincatiEndToEnd(t *testing.T) {
	dir := t.TempDir()
	const opToken = "operator-token-for-the-test"
	conf := filepath.Join(dir, "coordinator.toml")
	peerToken := filepath.Join(dir, "peer.token")
	if err := os.WriteFile(peerToken, []byte("peer-token-of-sixteen-or-more\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(fleetlock string) {
		t.Helper()
		c := "[fleetlock]\n" + fleetlock + "\n[auth]\npeer_token_file = \"" + peerToken + "\"\n[[auth.tokens]]\nname = \"ops\"\nrole = \"operate\"\nsha256 = \"" + api.HashToken(opToken) + "\"\n"
		if err := os.WriteFile(conf, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	raft, httpAddr := freeAddr(t), freeAddr(t)
	args := []string{"--node-id", "c1", "--data-dir", filepath.Join(dir, "data"), "--raft-addr", raft,
		"--http-addr", httpAddr, "--peers", "c1=" + raft, "--config", conf}
	env := cli.Env{Name: "kroll-coordinator", Stdout: io.Discard, Stderr: io.Discard, Getenv: os.Getenv}

	write(`allow_unauthenticated_from = ["10.0.0.0/8", "127.0.0.0/33"]`)
	err := run(t.Context(), env, args)
	if err == nil || !strings.Contains(err.Error(), "fleetlock: allow_unauthenticated_from[1]") {
		t.Fatalf("start with a bad network: %v, want an error naming fleetlock.allow_unauthenticated_from[1]", err)
	}

	write(`allow_unauthenticated_from = ["127.0.0.0/8"]` + "\ngroups = [\"fra\"]")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- run(ctx, env, args) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	base := "http://" + httpAddr
	post := func(path, token, body string, header ...string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 20s: %v", err)
		}
	}
	req, _ := http.NewRequest(http.MethodPut, base+wire.PathDatacenter+"fra", strings.NewReader(`{"slot_limit":1}`))
	req.Header.Set("Authorization", "Bearer "+opToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("dc set fra: %v %v", resp, err)
	}
	zincati := func(path, group string) int {
		return post(path, "", `{"client_params":{"id":"c0ffee00c0ffee00c0ffee00c0ffee00","group":"`+group+`"}}`, "fleet-lock-protocol", "true")
	}
	for _, c := range []struct {
		name string
		got  func() int
		want int
	}{
		{"pre-reboot", func() int { return zincati(wire.PathFleetLockPreReboot, "fra") }, 200},
		{"pre-reboot, group not open", func() int { return zincati(wire.PathFleetLockPreReboot, "ams") }, 403},
		{"steady-state", func() int { return zincati(wire.PathFleetLockSteady, "fra") }, 200},
		{"heartbeat without credentials", func() int {
			return post(wire.PathHeartbeat, "", `{"host_id":"h1","datacenter":"fra","phase":"idle"}`)
		}, 401},
		{"rollout without credentials", func() int { return post(wire.PathRollouts, "", `{}`) }, 401},
	} {
		if got := c.got(); got != c.want {
			t.Errorf("%s: status %d, want %d", c.name, got, c.want)
		}
	}
}
