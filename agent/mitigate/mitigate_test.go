package mitigate_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/agent/mitigate"
	"github.com/kroll-dev/kroll/bpf"
	"github.com/kroll-dev/kroll/pkg/kversion"
	"github.com/kroll-dev/kroll/pkg/policy"
	"github.com/kroll-dev/kroll/pkg/wire"
)

var now = time.Date(2026, 5, 15, 0, 0, 0, 0, time.UTC)

func key(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func copyFail(version int64, mode policy.Mode) policy.Policy {
	return policy.Policy{
		ID: "copy-fail", CVE: "CVE-2026-31431", Version: version,
		Kind: policy.KindSocketFamily, Mode: mode,
		Params: policy.Params{
			Family: "AF_ALG", Operations: []policy.Operation{policy.OpBind},
			AllowExe: []string{"/usr/sbin/charon"},
		},
		AppliesTo: policy.AppliesTo{FixedIn: []string{"6.12.85", "6.1.170"}},
		Expires:   time.Date(2026, 6, 30, 0, 0, 0, 0, time.UTC),
	}
}

// signed returns p's canonical document signed with priv.
func signed(t *testing.T, priv ed25519.PrivateKey, p policy.Policy) mitigate.SignedPolicy {
	t.Helper()
	doc, err := p.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := policy.Sign(priv, p)
	if err != nil {
		t.Fatal(err)
	}
	return mitigate.SignedPolicy{Source: p.ID + ".yaml", Document: doc, Signature: sig.Marshal()}
}

// fake is an Enforcer that records what it was asked to do.
type fake struct {
	available error
	probes    int
	installed map[string]policy.Policy
	installs  int
}

func (f *fake) Available(context.Context) error { f.probes++; return f.available }
func (f *fake) Install(_ context.Context, v policy.Verified) ([]string, error) {
	p := v.Policy()
	f.installs++
	f.installed[p.ID] = p
	return nil, nil
}
func (f *fake) Read(id string) (bpf.Mode, bpf.Counters, error) {
	p, ok := f.installed[id]
	if !ok {
		return 0, bpf.Counters{}, mitigate.ErrNotInstalled
	}
	if p.Mode == policy.ModeEnforce {
		return bpf.Enforce, bpf.Counters{Denied: 1}, nil
	}
	return bpf.Audit, bpf.Counters{}, nil
}
func (f *fake) Uninstall(id string) error { delete(f.installed, id); return nil }

func newManager(t *testing.T, kernel string, enf mitigate.Enforcer) (*mitigate.Manager, string) {
	t.Helper()
	k, err := kversion.Parse(kernel)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	m, err := mitigate.New(mitigate.Config{
		Trusted:  []ed25519.PublicKey{key(1).Public().(ed25519.PublicKey)},
		StateDir: dir, Kernel: &k, Now: func() time.Time { return now }, Enforcer: enf,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m, dir
}

func stateFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if e.Name() == ".lock" { // the cross-process lock, not state
			continue
		}
		names = append(names, e.Name())
	}
	return names
}

func TestRejections(t *testing.T) {
	good := signed(t, key(1), copyFail(3, policy.ModeAudit))
	unsigned := good
	unsigned.Signature = nil
	wrongKey := signed(t, key(2), copyFail(3, policy.ModeAudit))
	older := signed(t, key(1), copyFail(2, policy.ModeEnforce))
	unknownKind := good
	unknownKind.Document = bytes.Replace(good.Document, []byte(`"socket-family"`), []byte(`"socket-famly"`), 1)
	relPath := good
	relPath.Document = bytes.Replace(good.Document, []byte(`"/usr/sbin/charon"`), []byte(`"usr/sbin/charon"`), 1)
	tampered := good
	tampered.Document = bytes.Replace(good.Document, []byte(`"audit"`), []byte(`"enforce"`), 1)

	for _, tc := range []struct {
		name    string
		doc     mitigate.SignedPolicy
		install bool // install good first
		want    string
	}{
		{"unsigned", unsigned, false, "unsigned"},
		{"wrong key", wrongKey, false, "signature"},
		{"tampered", tampered, false, "signature"},
		{"older version", older, true, "installed version 3"},
		{"unknown kind", unknownKind, false, "kind"},
		{"relative path", relPath, false, "absolute path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fake{installed: map[string]policy.Policy{}}
			m, dir := newManager(t, "6.12.50", f)
			var before []byte
			if tc.install {
				if _, err := m.Apply(t.Context(), []mitigate.SignedPolicy{good}); err != nil {
					t.Fatal(err)
				}
				var err error
				if before, err = os.ReadFile(filepath.Join(dir, "copy-fail.json")); err != nil {
					t.Fatal(err)
				}
			}
			installs := f.installs
			sts, err := m.Apply(t.Context(), []mitigate.SignedPolicy{tc.doc})
			if !errors.Is(err, mitigate.ErrRejected) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Apply error %v, want a rejection mentioning %q", err, tc.want)
			}
			t.Logf("%s: %v", tc.name, err)
			if len(sts) != 1 || sts[0].State != wire.PolicyRejected {
				t.Errorf("status %+v, want rejected", sts)
			}
			if f.installs != installs {
				t.Errorf("rejected policy was installed")
			}
			if tc.install {
				after, err := os.ReadFile(filepath.Join(dir, "copy-fail.json"))
				if err != nil || !bytes.Equal(after, before) {
					t.Errorf("stored policy changed by a rejected one (err %v)", err)
				}
				if f.installed["copy-fail"].Version != 3 {
					t.Errorf("installed %+v, want version 3", f.installed["copy-fail"])
				}
			} else if names := stateFiles(t, dir); len(names) != 0 {
				t.Errorf("state dir holds %v after a rejection", names)
			}
		})
	}
}

func TestRetired(t *testing.T) {
	f := &fake{installed: map[string]policy.Policy{}}
	m, _ := newManager(t, "6.12.90", f) // fixed in 6.12.85
	sts, err := m.Apply(t.Context(), []mitigate.SignedPolicy{signed(t, key(1), copyFail(3, policy.ModeEnforce))})
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != 1 || sts[0].State != wire.PolicyRetired {
		t.Fatalf("Apply = %+v, want retired", sts)
	}
	if f.installs != 0 || f.probes != 0 {
		t.Errorf("retired policy: %d installs, %d probes, want none", f.installs, f.probes)
	}
	ls, err := m.List(t.Context())
	if err != nil || len(ls) != 1 || ls[0].State != wire.PolicyRetired {
		t.Errorf("List = %+v, %v; want retired", ls, err)
	}
}

func TestExpired(t *testing.T) {
	f := &fake{installed: map[string]policy.Policy{}}
	m, _ := newManager(t, "6.12.50", f)
	p := copyFail(3, policy.ModeEnforce)
	p.Expires = now.Add(-time.Hour)
	sts, err := m.Apply(t.Context(), []mitigate.SignedPolicy{signed(t, key(1), p)})
	if err != nil || len(sts) != 1 || sts[0].State != wire.PolicyRetired || !strings.HasPrefix(sts[0].Detail, "expired") || f.installs != 0 {
		t.Fatalf("Apply = %+v, %v (installs %d); want expired, nothing installed", sts, err, f.installs)
	}
}

func TestApplyUpdateRemove(t *testing.T) {
	f := &fake{installed: map[string]policy.Policy{}}
	m, dir := newManager(t, "6.12.50", f)
	v3 := signed(t, key(1), copyFail(3, policy.ModeAudit))
	for _, doc := range []mitigate.SignedPolicy{v3, v3} { // identical re-apply is fine
		sts, err := m.Apply(t.Context(), []mitigate.SignedPolicy{doc})
		if err != nil || sts[0].State != wire.PolicyAuditing {
			t.Fatalf("Apply = %+v, %v; want auditing", sts, err)
		}
	}
	sts, err := m.Apply(t.Context(), []mitigate.SignedPolicy{signed(t, key(1), copyFail(4, policy.ModeEnforce))})
	if err != nil || sts[0].State != wire.PolicyEnforcing || sts[0].Counters == nil {
		t.Fatalf("Apply v4 = %+v, %v; want enforcing with counters", sts, err)
	}
	ls, err := m.List(t.Context())
	if err != nil || len(ls) != 1 || ls[0].State != wire.PolicyEnforcing || ls[0].Version != 4 {
		t.Fatalf("List = %+v, %v", ls, err)
	}
	if err := m.Remove(t.Context(), "copy-fail"); err != nil {
		t.Fatal(err)
	}
	if len(f.installed) != 0 || len(stateFiles(t, dir)) != 0 {
		t.Errorf("after Remove: installed %v, state %v", f.installed, stateFiles(t, dir))
	}
	if err := m.Remove(t.Context(), "copy-fail"); !errors.Is(err, mitigate.ErrNotInstalled) {
		t.Errorf("second Remove = %v, want ErrNotInstalled", err)
	}
}

func TestUnavailableFake(t *testing.T) {
	f := &fake{installed: map[string]policy.Policy{}, available: errors.New("bpf-lsm unavailable: add bpf to lsm=")}
	m, _ := newManager(t, "6.12.50", f)
	sts, err := m.Apply(t.Context(), []mitigate.SignedPolicy{signed(t, key(1), copyFail(3, policy.ModeEnforce))})
	if err == nil || len(sts) != 1 || sts[0].State != wire.PolicyUnavailable || f.installs != 0 {
		t.Fatalf("Apply = %+v, %v; want unavailable, nothing installed", sts, err)
	}
}

// TestRetireDecision: the running kernel retires the policy only when it
// is known to contain the fix (upstream release, internal build of the
// same series, Debian package version); a kernel that cannot be judged
// keeps the mitigation in force.
func TestRetireDecision(t *testing.T) {
	proc := func(release, pkg string) string {
		return "Linux version " + release + " (debian-kernel@lists.debian.org) (gcc-12) #1 SMP PREEMPT_DYNAMIC Debian " + pkg + " (2026-10-02)"
	}
	for _, tc := range []struct {
		name    string
		kernel  string // a release, or /proc/version content
		fixedIn []string
		want    wire.PolicyState
	}{
		{"upstream fixed", "6.12.90", []string{"6.12.85"}, wire.PolicyRetired},
		{"upstream not fixed", "6.12.80", []string{"6.12.85"}, wire.PolicyEnforcing},
		{"copy fail build", "6.12.80-cf1-amd64", []string{"6.12.80-cf1"}, wire.PolicyRetired},
		{"later build", "6.12.80-cf3-amd64", []string{"6.12.80-cf1"}, wire.PolicyRetired},
		{"earlier build", "6.12.80-cf1-amd64", []string{"6.12.80-cf2"}, wire.PolicyEnforcing},
		{"debian package fixed", proc("6.1.0-56-amd64", "6.1.192-2"), []string{"6.1.192-1~deb12u1"}, wire.PolicyRetired},
		{"debian package not fixed", proc("6.1.0-56-amd64", "6.1.192-1"), []string{"6.1.192-2"}, wire.PolicyEnforcing},
		{"cannot judge: bare ABI name", "6.1.0-56-amd64", []string{"6.1.170"}, wire.PolicyEnforcing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				k   kversion.Version
				err error
			)
			if strings.HasPrefix(tc.kernel, "Linux ") {
				k, err = kversion.ParseProcVersion(tc.kernel)
			} else {
				k, err = kversion.Parse(tc.kernel)
			}
			if err != nil {
				t.Fatal(err)
			}
			f := &fake{installed: map[string]policy.Policy{}}
			m, err := mitigate.New(mitigate.Config{
				Trusted:  []ed25519.PublicKey{key(1).Public().(ed25519.PublicKey)},
				StateDir: t.TempDir(), Kernel: &k, Now: func() time.Time { return now }, Enforcer: f,
			})
			if err != nil {
				t.Fatal(err)
			}
			p := copyFail(3, policy.ModeEnforce)
			p.AppliesTo.FixedIn = tc.fixedIn
			sts, err := m.Apply(t.Context(), []mitigate.SignedPolicy{signed(t, key(1), p)})
			if err != nil || len(sts) != 1 || sts[0].State != tc.want {
				t.Fatalf("Apply = %+v, %v; want %s", sts, err, tc.want)
			}
			if _, in := f.installed[p.ID]; in != (tc.want == wire.PolicyEnforcing) {
				t.Errorf("installed = %v, want %v", in, tc.want == wire.PolicyEnforcing)
			}
		})
	}
}
