//go:build unix

package mitigate_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/agent/mitigate"
	"github.com/kroll-dev/kroll/pkg/policy"
)

// TestStateLock: while another process holds the state directory's lock
// (a one-shot command, or the daemon in a reconcile), nothing changes the
// policy state or the pins: they wait for it, or give up with ctx.
func TestStateLock(t *testing.T) {
	f := &fake{installed: map[string]policy.Policy{}}
	m, dir := newManager(t, "6.1.100", listingFake{f})
	if _, err := m.Apply(t.Context(), []mitigate.SignedPolicy{signed(t, key(1), copyFail(3, policy.ModeEnforce))}); err != nil {
		t.Fatal(err)
	}
	// The other process: the same lock file, another open file.
	lf, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	f.installed["orphan"] = copyFail(1, policy.ModeAudit)
	for _, op := range []struct {
		name string
		fn   func(ctx context.Context) error
	}{
		{"Reconcile", func(ctx context.Context) error { _, err := m.Reconcile(ctx); return err }},
		{"Apply", func(ctx context.Context) error {
			_, err := m.Apply(ctx, []mitigate.SignedPolicy{signed(t, key(1), copyFail(4, policy.ModeEnforce))})
			return err
		}},
		{"ApplyOnly", func(ctx context.Context) error {
			_, err := m.ApplyOnly(ctx, []mitigate.SignedPolicy{signed(t, key(1), copyFail(4, policy.ModeEnforce))})
			return err
		}},
		{"Retire", func(ctx context.Context) error { return m.Retire(ctx, "copy-fail", 3) }},
		{"Remove", func(ctx context.Context) error { return m.Remove(ctx, "copy-fail") }},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		err := op.fn(ctx)
		cancel()
		if err == nil {
			t.Errorf("%s succeeded while another process holds the lock", op.name)
		}
		if _, ok := f.installed["orphan"]; !ok || f.installed["copy-fail"].Version != 3 {
			t.Fatalf("%s changed the pins while another process holds the lock: %v", op.name, f.installed)
		}
	}
	if got := stateFiles(t, dir); len(got) != 1 || got[0] != "copy-fail.json" {
		t.Fatalf("state changed under the lock: %v", got)
	}
	// Released: the waiting reconcile goes ahead.
	done := make(chan error, 1)
	go func() { _, err := m.Reconcile(t.Context()); done <- err }()
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Reconcile did not wait for the lock: %v", err)
	default:
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, ok := f.installed["orphan"]; ok {
		t.Fatal("the reconcile after the lock was released did not run")
	}
}

// TestApplyOnlyLeavesOthers: a one-shot apply given only some of the keys
// touches only the policies it was given: pins signed by keys it does not
// have, and policies it was not given, stay.
func TestApplyOnlyLeavesOthers(t *testing.T) {
	f := &fake{installed: map[string]policy.Policy{}}
	c := &clock{t: now}
	dir := t.TempDir()
	daemon := managerAt(t, dir, listingFake{f}, c, key(1), key(2))
	a, b := copyFail(1, policy.ModeEnforce), copyFail(1, policy.ModeAudit)
	a.ID, b.ID = "a", "b"
	if _, err := daemon.Apply(t.Context(), []mitigate.SignedPolicy{signed(t, key(1), a), signed(t, key(2), b)}); err != nil {
		t.Fatal(err)
	}
	oneShot := managerAt(t, dir, listingFake{f}, c, key(2))
	b2 := b
	b2.Version = 2
	sts, err := oneShot.ApplyOnly(t.Context(), []mitigate.SignedPolicy{signed(t, key(2), b2)})
	if err != nil || len(sts) != 1 || sts[0].ID != "b" || sts[0].Version != 2 || !sts[0].State.InForce() {
		t.Fatalf("ApplyOnly = %+v, %v; want b v2 in force", sts, err)
	}
	if _, ok := f.installed["a"]; !ok {
		t.Fatal("a one-shot apply unpinned a policy signed by a key it was not given")
	}
	if got := stateFiles(t, dir); len(got) != 2 {
		t.Fatalf("state %v, want both policies", got)
	}
}
