package main

import (
	"strings"
	"testing"

	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// TestHostRemove drives `krollctl host remove` against a real coordinator
// node: a decommissioned host goes; a slot holder only with --force and
// --reason.
func TestHostRemove(t *testing.T) {
	url, adminTok, agentTok := realCoordinator(t)
	env := map[string]string{"KROLL_COORDINATOR": url, "KROLL_TOKEN": adminTok}
	if code, _, stderr := krollctlEnv(t, env, "dc", "set", "fra1", "--create", "--slots", "1"); code != 0 {
		t.Fatal(stderr)
	}
	agent, err := client.New(url, client.Options{Token: agentTok})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"h1", "h2"} {
		if _, err := agent.Heartbeat(t.Context(), wire.Heartbeat{HostID: h, Datacenter: "fra1", Phase: wire.PhaseIdle}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := agent.AcquireSlot(t.Context(), wire.SlotRequest{HostID: "h1", Datacenter: "fra1"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		out, err string
	}{
		{"no id", []string{"host", "remove"}, 2, "", "usage"},
		{"force without reason", []string{"host", "remove", "h1", "--force"}, 2, "", "--reason"},
		{"unknown host", []string{"host", "remove", "h9"}, 1, "", "not_found"},
		{"holder", []string{"host", "remove", "h1"}, 1, "", "holds a slot"},
		{"decommissioned", []string{"host", "remove", "h2"}, 0, "removed host h2 from fra1", ""},
		{"holder forced", []string{"host", "remove", "h1", "--force", "--reason", "chassis pulled"}, 0, "removed host h1", ""},
		{"gone", []string{"host", "list"}, 0, "no hosts", ""},
		{"event", []string{"events"}, 0, "chassis pulled", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := krollctlEnv(t, env, tc.args...)
			if code != tc.code || !strings.Contains(stdout, tc.out) || !strings.Contains(stderr, tc.err) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d, %q, %q", code, stdout, stderr, tc.code, tc.out, tc.err)
			}
		})
	}
}
