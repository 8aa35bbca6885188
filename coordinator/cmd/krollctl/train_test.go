package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// TestTrainCommands drives `krollctl train` and `release reject` against
// a real coordinator node: set validates (locally, then against the
// coordinator's datacenters), show prints a table or JSON, hold, resume
// and skip need a reason.
func TestTrainCommands(t *testing.T) {
	url, adminTok, _ := realCoordinator(t)
	env := map[string]string{"KROLL_COORDINATOR": url, "KROLL_TOKEN": adminTok}
	for _, args := range [][]string{
		{"dc", "set", "stg1", "--create", "--slots", "1", "--tier", "staging"},
		{"dc", "set", "fra1", "--create", "--slots", "1"},
	} {
		if code, _, stderr := krollctlEnv(t, env, args...); code != 0 {
			t.Fatal(stderr)
		}
	}
	set := []string{"train", "set", "6.12", "--staging", "stg1", "--departure", "Tue 09:00 UTC"}
	tests := []struct {
		name     string
		args     []string
		code     int
		out, err string
	}{
		{"no line", []string{"train", "set"}, 2, "", "usage"},
		{"no departure", []string{"train", "set", "6.12", "--staging", "stg1"}, 2, "", "--departure"},
		{"bad zone", []string{"train", "set", "6.12", "--staging", "stg1", "--departure", "Tue 09:00 Nowhere/City"}, 2, "", "zone"},
		{"bad freeze", append(set[:len(set):len(set)], "--freeze", "2027-01-04..2026-12-20"), 2, "", "before its first"},
		{"edge staging", []string{"train", "set", "6.12", "--staging", "fra1", "--departure", "Tue 09:00 UTC"}, 1, "", "is of tier edge"},
		{"none yet", []string{"train", "show"}, 0, "no trains", ""},
		{"set", append(set[:len(set):len(set)], "--freeze", "2026-12-20..2027-01-04", "--edge-cycle", "336h"), 0, "train 6.12: departs Tue 09:00 UTC every 336h0m0s", ""},
		{"show", []string{"train", "show"}, 0, "6.12", ""},
		{"hold without reason", []string{"train", "hold", "6.12"}, 2, "", "--reason"},
		{"hold", []string{"train", "hold", "6.12", "--reason", "incident 4"}, 0, "HELD: incident 4", ""},
		{"resume", []string{"train", "resume", "6.12", "--reason", "over"}, 0, "train 6.12", ""},
		{"skip", []string{"train", "skip", "6.12", "--reason", "change freeze"}, 0, "the next departure is SKIPPED: change freeze", ""},
		{"expedite unknown", []string{"train", "expedite", "6.12", "nope", "--reason", "CVE"}, 1, "", "not_found"},
		{"reject unknown", []string{"release", "reject", "nope", "--reason", "bad"}, 1, "", "not_found"},
		{"reject without reason", []string{"release", "reject", "nope"}, 2, "", "--reason"},
		{"events", []string{"events"}, 0, "train 6.12 held: incident 4", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := krollctlEnv(t, env, tc.args...)
			if code != tc.code || !strings.Contains(stdout, tc.out) || !strings.Contains(stderr, tc.err) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d, %q, %q", code, stdout, stderr, tc.code, tc.out, tc.err)
			}
		})
	}
	code, stdout, stderr := krollctlEnv(t, env, "train", "show", "6.12", "-o", "json")
	var tr wire.Train
	if code != 0 || json.Unmarshal([]byte(stdout), &tr) != nil || tr.Line != "6.12" || !tr.SkipNext || tr.EdgeCycleSeconds != 336*3600 || len(tr.Freezes) != 1 {
		t.Fatalf("exit %d, %q %q: %+v", code, stdout, stderr, tr)
	}
}
