package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/cli"
)

// TestMetricsAndRaftLogs runs a node through the real main (Raft on disk,
// HTTP on loopback): /metrics carries kroll_build_info, the fleet gauges
// and Raft's own metrics (hashicorp/raft's and raft-wal's), and Raft's
// log lines are JSON records of the node's log with their own level and
// attributes.
func TestMetricsAndRaftLogs(t *testing.T) {
	dir := t.TempDir()
	raft, httpAddr := freeAddr(t), freeAddr(t)
	args := []string{"--node-id", "c1", "--data-dir", filepath.Join(dir, "data"), "--raft-addr", raft,
		"--http-addr", httpAddr, "--peers", "c1=" + raft}
	stderr := &syncBuffer{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, cli.Env{Name: "kroll-coordinator", Stdout: io.Discard, Stderr: stderr, Getenv: os.Getenv}, args)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + httpAddr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if code, _ := get("/readyz"); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node not ready within 20s: %s", stderr.String())
		}
	}
	var body string
	want := []string{`kroll_build_info{binary="kroll-coordinator",commit="`, `kroll_raft_state{state="Leader"} 1`,
		"kroll_raft_state_leader", "kroll_raft_apply", "kroll_raft_wal_log_appends_total", "kroll_raft_wal_log_entry_bytes_written_total"}
	// The leader's ticks are Raft applies; raft's counters appear with the first.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var code int
		code, body = get("/metrics")
		missing := ""
		for _, w := range want {
			if !strings.Contains(body, w) {
				missing = w
			}
		}
		if code == http.StatusOK && missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics (%d) lacks %q:\n%s", code, missing, body)
		}
	}

	var leader map[string]any
	sc := bufio.NewScanner(strings.NewReader(stderr.String()))
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		if r["component"] == "raft" && r["msg"] == "entering leader state" {
			leader = r
		}
	}
	if leader == nil || leader["level"] != "INFO" || leader["node"] != "c1" || leader["leader"] == nil {
		t.Fatalf("no INFO record of Raft \"entering leader state\" with node and leader attributes:\n%s", stderr.String())
	}
}
