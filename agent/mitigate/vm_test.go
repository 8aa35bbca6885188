//go:build (386 || amd64) && linux

package mitigate_test

import (
	"regexp"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/agent/mitigate"
	"github.com/kroll-dev/kroll/pkg/wire"
	"github.com/kroll-dev/kroll/test/vm"
)

// TestPersistentCopyFail boots Debian 6.1 and 6.12 and runs mitcheck: a
// first process applies a signed Copy Fail policy in enforce and exits; a
// second process with a new Manager finds the bind still denied, adopts
// the pins for a newer version without loading the programs again, and
// removes the policy, after which the bind succeeds again.
func TestPersistentCopyFail(t *testing.T) {
	prog := vm.TestProgram(t, "github.com/kroll-dev/kroll/test/vm/guests/mitcheck")
	for _, line := range []struct {
		name    string
		pattern *regexp.Regexp
	}{{"6.1", vm.Line61}, {"6.12", vm.Line612}} {
		t.Run(line.name, func(t *testing.T) {
			t.Parallel()
			k := vm.TestKernel(t, line.pattern)
			res, err := vm.Run(t.Context(), vm.Config{
				Kernel: k, Program: prog,
				Modules:  []string{"af_alg", "algif_aead", "authenc", "authencesn"},
				MemoryMB: 1024, Timeout: 6 * time.Minute,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.ExitCode != 0 {
				t.Fatalf("%s: guest exit %d; console:\n%s", k.Release, res.ExitCode, res.Tail(40))
			}
			str := func(key string) string {
				var s string
				if err := res.Decode(key, &s); err != nil {
					t.Fatal(err)
				}
				return s
			}
			states := func(key string) []mitigate.Status {
				var s []mitigate.Status
				if err := res.Decode(key, &s); err != nil {
					t.Fatal(err)
				}
				return s
			}
			var applyPID, checkPID int
			if err := res.Decode("apply_pid", &applyPID); err != nil {
				t.Fatal(err)
			}
			if err := res.Decode("check_pid", &checkPID); err != nil {
				t.Fatal(err)
			}
			if applyPID == checkPID {
				t.Errorf("apply and check ran in the same process %d", applyPID)
			}
			for key, want := range map[string]string{
				"bind_before":     "ok",
				"bind_enforced":   "bind: EPERM",
				"bind_after_exit": "bind: EPERM",
				"socket_v2":       "socket: EPERM",
				"bind_removed":    "ok",
			} {
				if got := str(key); got != want {
					t.Errorf("%s: %s = %q, want %q", k.Release, key, got, want)
				}
			}
			t.Logf("%s: Copy Fail bind as uid 65534: no policy %s, enforce %s, after the agent exited %s, after remove %s",
				k.Release, str("bind_before"), str("bind_enforced"), str("bind_after_exit"), str("bind_removed"))
			if a := states("apply_v1"); len(a) != 1 || a[0].State != wire.PolicyEnforcing || len(a[0].Warnings) != 1 {
				t.Errorf("apply v1 = %+v, want enforcing with one warning (missing allow_exe)", a)
			}
			if l := states("list"); len(l) != 1 || l[0].State != wire.PolicyEnforcing || l[0].Version != 1 ||
				l[0].Counters == nil || l[0].Counters.Denied < 2 {
				t.Errorf("list in new process = %+v, want copy-fail v1 enforcing with ≥2 denials", l)
			}
			if a := states("apply_v2"); len(a) != 1 || a[0].State != wire.PolicyEnforcing || a[0].Version != 2 {
				t.Errorf("apply v2 = %+v, want enforcing", a)
			}
			var before, after map[string]int
			if err := res.Decode("progs_before", &before); err != nil {
				t.Fatal(err)
			}
			if err := res.Decode("progs_after", &after); err != nil {
				t.Fatal(err)
			}
			// v1 hooks bind only, but both programs are loaded and pinned;
			// v2 adds create by attaching the pinned program.
			total := func(m map[string]int) (n int) {
				for _, c := range m {
					n += c
				}
				return n
			}
			if total(before) != 2 || total(after) != 2 {
				t.Errorf("socket-family programs before re-apply %v, after %v; want 2 each (no duplicates)", before, after)
			}
			for name, c := range after {
				if c != 1 {
					t.Errorf("program %s loaded %d times", name, c)
				}
			}
			t.Logf("%s: programs before re-apply %v, after %v", k.Release, before, after)
			if l := states("list_removed"); len(l) != 0 {
				t.Errorf("list after remove = %+v, want empty", l)
			}
			// Audit: the bind succeeds, Watch logs it with this exe and
			// counts it.
			if got := str("bind_audit"); got != "ok" {
				t.Errorf("%s: bind under audit = %q, want ok", k.Release, got)
			}
			if a := states("apply_audit"); len(a) != 1 || a[0].State != wire.PolicyAuditing {
				t.Errorf("apply audit = %+v, want auditing", a)
			}
			exe := str("exe")
			var exeIno uint64
			if err := res.Decode("exe_ino", &exeIno); err != nil {
				t.Fatal(err)
			}
			var event map[string]any
			if err := res.Decode("audit_event", &event); err != nil {
				t.Fatal(err)
			}
			for key, want := range map[string]any{
				"policy": "copy-fail-audit", "version": 1.0, "mode": "audit", "verdict": "audited",
				"uid": 65534.0, "exe": exe, "exe_ino": float64(exeIno), "name": "authencesn(hmac(sha256),cbc(aes))",
				"arg": 38.0, // AF_ALG
			} {
				if event[key] != want {
					t.Errorf("%s: audit event %s = %v, want %v (event %v)", k.Release, key, event[key], want, event)
				}
			}
			if c, _ := event["comm"].(string); c == "" {
				t.Errorf("%s: audit event without comm: %v", k.Release, event)
			}
			var counters map[string]float64
			if err := res.Decode("audit_counters", &counters); err != nil {
				t.Fatal(err)
			}
			ckey := "kroll_mitigation_events_total,exe=" + exe + ",policy=copy-fail-audit,verdict=audited"
			if counters[ckey] != 1 || len(counters) != 1 {
				t.Errorf("%s: counters %v, want %s = 1", k.Release, counters, ckey)
			}
			t.Logf("%s: audit event %v; counters %v", k.Release, event, counters)
			var pinsRemoved bool
			if err := res.Decode("pins_removed", &pinsRemoved); err != nil || !pinsRemoved {
				t.Errorf("pins still present after remove (%v)", err)
			}
		})
	}
}
