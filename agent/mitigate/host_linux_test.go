//go:build (386 || amd64 || arm64) && linux

package mitigate_test

import (
	"crypto/ed25519"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/agent/mitigate"
	"github.com/kroll-dev/kroll/bpf"
	"github.com/kroll-dev/kroll/pkg/policy"
	"github.com/kroll-dev/kroll/pkg/wire"
	"github.com/kroll-dev/kroll/test/vm"
)

// TestHostUnavailable applies a valid, signed policy with the real bpf-lsm
// enforcer on the development machine's own kernel, which refuses LSM
// programs (no bpf in lsm=, or EPERM on load). Apply must say so, with a
// reason, return an error and load nothing. It never skips in CI.
func TestHostUnavailable(t *testing.T) {
	if os.Geteuid() != 0 {
		msg := "TestHostUnavailable needs root to try loading LSM programs on the host"
		if vm.CI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	root := "/sys/fs/bpf/kroll-test-" + strings.ReplaceAll(t.Name(), "/", "-")
	m, err := mitigate.New(mitigate.Config{
		Trusted:  []ed25519.PublicKey{key(1).Public().(ed25519.PublicKey)},
		StateDir: t.TempDir(), BPFFS: root,
	})
	if err != nil {
		t.Fatal(err)
	}
	p := copyFail(3, policy.ModeEnforce)
	p.AppliesTo.FixedIn = []string{"6.1.999", "6.12.999", "6.18.999"}
	p.Expires = time.Now().Add(24 * time.Hour).Truncate(time.Second)
	sts, err := m.Apply(t.Context(), []mitigate.SignedPolicy{signed(t, key(1), p)})
	if err == nil {
		m.Remove(t.Context(), p.ID)
		t.Fatalf("Apply on this host's kernel succeeded (%+v): bpf-lsm is usable here, which this test expects never to be the case "+
			"on the development machine (LSM loads refused); the unavailable path is then untested here, fix the test environment", sts)
	}
	if !errors.Is(err, bpf.ErrUnavailable) {
		t.Fatalf("Apply error %v, want one wrapping %v", err, bpf.ErrUnavailable)
	}
	if len(sts) != 1 || sts[0].State != wire.PolicyUnavailable || sts[0].Detail == "" {
		t.Fatalf("status %+v, want unavailable: <reason>", sts)
	}
	t.Logf("host: %s", sts[0])
	if _, err := os.Stat(root + "/" + p.ID); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pins at %s/%s exist (stat: %v), want nothing loaded", root, p.ID, err)
	}
	ls, err := m.List(t.Context())
	if err != nil || len(ls) != 1 || ls[0].State != wire.PolicyUnavailable {
		t.Errorf("List = %+v, %v; want unavailable", ls, err)
	}
}
