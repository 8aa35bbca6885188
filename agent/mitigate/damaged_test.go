package mitigate_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kroll-dev/kroll/agent/mitigate"
	"github.com/kroll-dev/kroll/pkg/policy"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// TestJudgeErrorKeepsPins: a stored document or retirement record that
// cannot be read, or a stored document that does not decode, says nothing
// about whether the policy should be pinned: a reconcile leaves its pins
// alone and reports the error, in the status and the returned error.
func TestJudgeErrorKeepsPins(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string)
		detail string
	}{
		{"unreadable document", func(t *testing.T, dir string) {
			replaceWithDir(t, filepath.Join(dir, "copy-fail.json"))
		}, "is a directory"},
		{"corrupt document", func(t *testing.T, dir string) {
			writeTestFile(t, filepath.Join(dir, "copy-fail.json"), `{"document": "id: copy-fail\nversion: [`)
		}, "stored policy damaged"},
		{"unreadable retirement record", func(t *testing.T, dir string) {
			replaceWithDir(t, filepath.Join(dir, "retired", "copy-fail.json"))
		}, "retirement of copy-fail"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fake{installed: map[string]policy.Policy{}}
			m, dir := newManager(t, "6.1.100", listingFake{f})
			if _, err := m.Apply(t.Context(), []mitigate.SignedPolicy{signed(t, key(1), copyFail(3, policy.ModeEnforce))}); err != nil {
				t.Fatal(err)
			}
			tc.damage(t, dir)
			for _, op := range []struct {
				name string
				fn   func(context.Context) ([]mitigate.Status, error)
			}{{"Reconcile", m.Reconcile}, {"List", m.List}, {"Restore", m.Restore}} {
				sts, err := op.fn(t.Context())
				if err == nil || !strings.Contains(err.Error(), tc.detail) {
					t.Errorf("%s error %v, want one containing %q", op.name, err, tc.detail)
				}
				if _, pinned := f.installed["copy-fail"]; !pinned {
					t.Fatalf("%s unpinned the policy on a read or decode error", op.name)
				}
				if len(sts) != 1 || sts[0].State != wire.PolicyEnforcing || !strings.Contains(sts[0].Detail, tc.detail) {
					t.Fatalf("%s = %+v; want enforcing (still pinned) with the error", op.name, sts)
				}
			}
		})
	}
}

func replaceWithDir(t *testing.T, path string) {
	t.Helper()
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		t.Fatal(err)
	}
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedRetirement: a retirement record that does not decode
// strictly retires the policy at every version (it never un-retires),
// says so, and the coordinator's next retirement rewrites it, after
// which newer versions are accepted again.
func TestDamagedRetirement(t *testing.T) {
	for _, tc := range []struct{ name, record string }{
		{"garbage", "\x00\x01garbage"},
		{"version missing", `{"id":"copy-fail"}`},
		{"version 0", `{"id":"copy-fail","version":0}`},
		{"negative version", `{"id":"copy-fail","version":-1}`},
		{"unknown field", `{"id":"copy-fail","version":2,"by":"x"}`},
		{"duplicate field", `{"id":"copy-fail","version":2,"version":1}`},
		{"other id", `{"id":"copy-fial","version":2}`},
		{"trailing data", `{"id":"copy-fail","version":2} {}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fake{installed: map[string]policy.Policy{}}
			m, dir := newManager(t, "6.1.100", listingFake{f})
			if _, err := m.Apply(t.Context(), []mitigate.SignedPolicy{signed(t, key(1), copyFail(3, policy.ModeEnforce))}); err != nil {
				t.Fatal(err)
			}
			writeTestFile(t, filepath.Join(dir, "retired", "copy-fail.json"), tc.record)
			sts, err := m.Reconcile(t.Context())
			if !errors.Is(err, mitigate.ErrDamagedRetirement) {
				t.Errorf("Reconcile error %v, want ErrDamagedRetirement", err)
			}
			if _, pinned := f.installed["copy-fail"]; pinned {
				t.Fatal("policy still pinned under a damaged retirement record")
			}
			if len(sts) != 1 || sts[0].State != wire.PolicyRetired || !strings.Contains(sts[0].Detail, "retirement record damaged") {
				t.Fatalf("Reconcile = %+v; want retired, saying the record is damaged", sts)
			}
			if _, ok, err := m.Retired("copy-fail"); !ok || !errors.Is(err, mitigate.ErrDamagedRetirement) {
				t.Fatalf("Retired = %v, %v; want retired, damaged", ok, err)
			}
			if _, err := m.Apply(t.Context(), []mitigate.SignedPolicy{signed(t, key(1), copyFail(9, policy.ModeEnforce))}); !errors.Is(err, mitigate.ErrRetired) {
				t.Fatalf("Apply v9 under a damaged record = %v, want ErrRetired", err)
			}
			// The coordinator retires version 3 again: the record is
			// rewritten and version 4 is news.
			if err := m.Retire(t.Context(), "copy-fail", 3); err != nil {
				t.Fatal(err)
			}
			if v, ok, err := m.Retired("copy-fail"); v != 3 || !ok || err != nil {
				t.Fatalf("Retired after Retire = %d, %v, %v; want 3", v, ok, err)
			}
			sts, err = m.Apply(t.Context(), []mitigate.SignedPolicy{signed(t, key(1), copyFail(4, policy.ModeEnforce))})
			if err != nil || len(sts) != 1 || sts[0].State != wire.PolicyEnforcing {
				t.Fatalf("Apply v4 after the rewrite = %+v, %v; want enforcing", sts, err)
			}
		})
	}
}

func TestRetireRefusesVersionZero(t *testing.T) {
	m, _ := newManager(t, "6.1.100", &fake{installed: map[string]policy.Policy{}})
	for _, v := range []int64{0, -1} {
		if err := m.Retire(t.Context(), "copy-fail", v); err == nil {
			t.Errorf("Retire at version %d accepted", v)
		}
	}
}

// failingFake fails Install and Uninstall for some ids.
type failingFake struct {
	listingFake
	failInstall, failUninstall map[string]bool
	listErr                    error
}

func (f failingFake) Install(ctx context.Context, v policy.Verified) ([]string, error) {
	if f.failInstall[v.Policy().ID] {
		return nil, errors.New("load: permission denied")
	}
	return f.listingFake.Install(ctx, v)
}

func (f failingFake) Uninstall(id string) error {
	if f.failUninstall[id] {
		return errors.New("unlink pin: device or resource busy")
	}
	return f.listingFake.Uninstall(id)
}

func (f failingFake) Installed() ([]string, error) {
	if f.listErr != nil {
		return nil, f.listErr
	}
	return f.listingFake.Installed()
}

// TestReconcileReportsDespiteFailures: a reconcile that fails for some
// policies (an install, an unpin) still returns every policy's status
// with the joined errors; only pins that cannot be listed leave it
// without statuses (ErrPins).
func TestReconcileReportsDespiteFailures(t *testing.T) {
	f := &fake{installed: map[string]policy.Policy{}}
	ff := failingFake{listingFake: listingFake{f}, failInstall: map[string]bool{}, failUninstall: map[string]bool{}}
	m, _ := newManager(t, "6.1.100", ff)
	var docs []mitigate.SignedPolicy
	for _, id := range []string{"a", "b", "c"} {
		p := copyFail(1, policy.ModeEnforce)
		p.ID = id
		docs = append(docs, signed(t, key(1), p))
	}
	if _, err := m.Apply(t.Context(), docs); err != nil {
		t.Fatal(err)
	}
	delete(f.installed, "b") // the pins of b went away; reinstalling fails
	ff.failInstall["b"] = true
	f.installed["orphan"] = copyFail(1, policy.ModeAudit) // cannot be unpinned
	ff.failUninstall["orphan"] = true
	sts, err := m.Reconcile(t.Context())
	if err == nil || !strings.Contains(err.Error(), "permission denied") || !strings.Contains(err.Error(), "resource busy") {
		t.Fatalf("Reconcile error %v, want both failures", err)
	}
	got := map[string]wire.PolicyState{}
	for _, s := range sts {
		got[s.ID] = s.State
	}
	want := map[string]wire.PolicyState{"a": wire.PolicyEnforcing, "b": wire.PolicyUnavailable, "c": wire.PolicyEnforcing, "orphan": wire.PolicyAuditing}
	if len(got) != len(want) {
		t.Fatalf("statuses %v, want %v", got, want)
	}
	for id, st := range want {
		if got[id] != st {
			t.Fatalf("statuses %v, want %v", got, want)
		}
	}
	ff.listErr = errors.New("readdir /sys/fs/bpf/kroll: input/output error")
	m2, _ := newManager(t, "6.1.100", ff)
	if sts, err := m2.Reconcile(t.Context()); !errors.Is(err, mitigate.ErrPins) || sts != nil {
		t.Fatalf("Reconcile with unlistable pins = %+v, %v; want ErrPins and no statuses", sts, err)
	}
}

// TestNoTrustedKeysReportsPins: without trusted keys a reconcile verifies
// nothing and so changes nothing, but it reports what is pinned, marked
// unverified, instead of failing.
func TestNoTrustedKeysReportsPins(t *testing.T) {
	f := &fake{installed: map[string]policy.Policy{}}
	c := &clock{t: now}
	dir := t.TempDir()
	m := managerAt(t, dir, listingFake{f}, c, key(1))
	if _, err := m.Apply(t.Context(), []mitigate.SignedPolicy{signed(t, key(1), copyFail(3, policy.ModeEnforce))}); err != nil {
		t.Fatal(err)
	}
	f.installed["orphan"] = copyFail(1, policy.ModeAudit)
	installs := f.installs
	none := managerAt(t, dir, listingFake{f}, c)
	for range 2 {
		sts, err := none.Reconcile(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(sts) != 2 || len(f.installed) != 2 || f.installs != installs {
			t.Fatalf("Reconcile = %+v (pins %d, installs %d); want both reported, nothing changed", sts, len(f.installed), f.installs-installs)
		}
		for _, s := range sts {
			if !s.State.InForce() || !strings.HasPrefix(s.Detail, "not verified: no trusted policy keys") {
				t.Errorf("status %+v, want in force and marked unverified", s)
			}
		}
		if ws := mitigate.WireStatus(sts); len(ws) != 2 {
			t.Errorf("heartbeat statuses %+v", ws)
		}
	}
}
