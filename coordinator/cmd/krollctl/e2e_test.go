package main

import (
	"encoding/json"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/api"
	"github.com/kroll-dev/kroll/coordinator/store"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// realCoordinator starts a one-node coordinator (real Raft, on-disk log)
// behind an HTTP test server and returns its URL and an admin token.
func realCoordinator(t *testing.T) (url, adminToken, agentToken string) {
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
	st, err := store.Open(store.Config{
		NodeID: "c1", DataDir: t.TempDir(), RaftAddr: raftAddr, HTTPAddr: ln.Addr().String(),
		Peers: map[string]string{"c1": raftAddr}, TickInterval: 50 * time.Millisecond,
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for deadline := time.Now().Add(10 * time.Second); !st.IsLeader(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no leader")
		}
	}
	adminToken, agentToken = "admin-token-0123456789", "agent-token-0123456789"
	admin, _ := api.NewToken("ops", api.RoleAdmin, api.HashToken(adminToken))
	agent, _ := api.NewToken("agents", api.RoleAgent, api.HashToken(agentToken))
	srv := httptest.NewUnstartedServer(api.New(api.Config{Store: st, Auth: &api.Auth{Tokens: []api.Token{admin, agent}}}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL, adminToken, agentToken
}

// TestAgainstRealCoordinator drives krollctl against a real coordinator
// node: configure a datacenter, let hosts register and take slots through
// the agent API, and inspect and break-glass release them.
func TestAgainstRealCoordinator(t *testing.T) {
	url, adminTok, agentTok := realCoordinator(t)
	env := map[string]string{"KROLL_COORDINATOR": url, "KROLL_TOKEN": adminTok}
	ctl := func(args ...string) string {
		t.Helper()
		code, stdout, stderr := krollctlEnv(t, env, args...)
		if code != 0 {
			t.Fatalf("krollctl %v: exit %d: %s", args, code, stderr)
		}
		return stdout
	}
	// A typo must not create a datacenter: a new name needs --create.
	if code, _, stderr := krollctlEnv(t, env, "dc", "set", "fra1", "--slots", "1"); code != 1 || !strings.Contains(stderr, "no such datacenter; to create it, add --create") {
		t.Fatalf("dc set of a new name without --create: exit %d %q", code, stderr)
	}
	if out := ctl("dc", "list"); !strings.Contains(out, "no datacenters") {
		t.Fatalf("dc set without --create created a datacenter:\n%s", out)
	}
	ctl("dc", "set", "fra1", "--create", "--slots", "1", "--min-healthy-pct", "50", "--window", "always")
	// Known now: no --create needed, and --create on a known one is harmless.
	ctl("dc", "set", "fra1", "--slots", "1")
	ctl("dc", "set", "fra1", "--create", "--slots", "1")
	if code, _, stderr := krollctlEnv(t, env, "dc", "set", "fra1", "--window", "Mon-Sun 02:00-02:00 UTC"); code != 1 || !strings.Contains(stderr, "invalid_request") {
		t.Fatalf("invalid window: exit %d %q", code, stderr)
	}
	ctl("dc", "set", "fra1", "--window", "always")

	agentClient, err := client.New(url, client.Options{Token: agentTok})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, h := range []string{"h1", "h2", "h3"} {
		if _, err := agentClient.Heartbeat(ctx, wire.Heartbeat{HostID: h, Datacenter: "fra1", Kernel: "6.12.85", Phase: wire.PhaseIdle}); err != nil {
			t.Fatal(err)
		}
	}
	slot, err := agentClient.AcquireSlot(ctx, wire.SlotRequest{HostID: "h1", Datacenter: "fra1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agentClient.AcquireSlot(ctx, wire.SlotRequest{HostID: "h2", Datacenter: "fra1"}); client.ErrorKind(err) != wire.KindSemaphoreFull {
		t.Fatalf("second acquire: %v, want %s", err, wire.KindSemaphoreFull)
	}

	if out := ctl("status"); !strings.Contains(out, "fra1") || !strings.Contains(out, "1/1") {
		t.Errorf("status:\n%s", out)
	}
	var slots []wire.Slot
	if err := json.Unmarshal([]byte(ctl("slots", "list", "--output", "json")), &slots); err != nil || len(slots) != 1 || slots[0].Token != slot.Token {
		t.Fatalf("slots list: %+v %v", slots, err)
	}
	if out := ctl("host", "show", "h1"); !strings.Contains(out, "6.12.85") {
		t.Errorf("host show:\n%s", out)
	}
	ctl("dc", "pause", "fra1", "--reason", "bgp maintenance")
	if out := ctl("dc", "list"); !strings.Contains(out, "yes") {
		t.Errorf("dc list after pause:\n%s", out)
	}
	ctl("slots", "release", "--dc", "fra1", "--host", "h1", "--reason", "checked by hand")
	ctl("dc", "resume", "fra1")
	if _, err := agentClient.RenewSlot(ctx, wire.SlotRequest{HostID: "h1", Datacenter: "fra1", Token: slot.Token}); client.ErrorKind(err) != wire.KindNotHolder {
		t.Fatalf("renew after break-glass release: %v", err)
	}
	if out := ctl("events"); !strings.Contains(out, "operator released slot of h1") || !strings.Contains(out, "bgp maintenance") {
		t.Errorf("events:\n%s", out)
	}
	var members []map[string]any
	if err := json.Unmarshal([]byte(ctl("cluster", "members", "--output", "json")), &members); err != nil || len(members) != 1 || members[0]["leader"] != true {
		t.Fatalf("members: %v %v", members, err)
	}
	// A read-only or agent credential cannot change settings.
	env["KROLL_TOKEN"] = agentTok
	if code, _, stderr := krollctlEnv(t, env, "dc", "pause", "fra1"); code != 1 || !strings.Contains(stderr, "forbidden") {
		t.Fatalf("pause with agent token: exit %d %q", code, stderr)
	}
}
