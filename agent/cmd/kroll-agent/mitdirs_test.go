package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/agent/mitigate"
	"github.com/kroll-dev/kroll/agent/running"
	"github.com/kroll-dev/kroll/bpf"
	"github.com/kroll-dev/kroll/pkg/kversion"
	"github.com/kroll-dev/kroll/pkg/policy"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// TestMitigationsUseAgentDirs: the one-shot mitigations commands work on
// the daemon's state directory and pins (from the agent configuration),
// not on a directory of their own next to the same bpffs.
func TestMitigationsUseAgentDirs(t *testing.T) {
	dir := t.TempDir()
	p := policy.Policy{
		ID: "copy-fail", Version: 1, Kind: policy.KindSocketFamily, Mode: policy.ModeEnforce,
		Params:    policy.Params{Family: "AF_ALG", Operations: []policy.Operation{policy.OpBind}},
		AppliesTo: policy.AppliesTo{FixedIn: []string{"6.1.999", "6.12.999", "6.18.999"}},
		Expires:   time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second),
	}
	doc, err := p.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := policy.Sign(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)), p)
	if err != nil {
		t.Fatal(err)
	}
	state, err := json.Marshal(map[string]any{"document": string(doc), "signature": json.RawMessage(sig.Marshal())})
	if err != nil {
		t.Fatal(err)
	}
	// The daemon's state: <state_dir>/mitigations.
	if err := os.MkdirAll(filepath.Join(dir, "agent", "mitigations"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "agent", "mitigations", "copy-fail.json"), state, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(cfg, []byte("state_dir = \""+filepath.Join(dir, "agent")+"\"\n[mitigations]\nbpffs = \""+filepath.Join(dir, "bpf")+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runAgent("mitigations", "list", "--config", cfg)
	if code != 0 || !strings.Contains(stdout, "copy-fail\tv1\tsocket-family\t") {
		t.Fatalf("list --config: exit %d, stdout %q, stderr %q; want the daemon's stored policy", code, stdout, stderr)
	}
	// Global flags before the command, JSON output.
	code, stdout, stderr = runAgent("--config", cfg, "-o", "json", "mitigations", "list")
	var sts []mitigate.Status
	if err := json.Unmarshal([]byte(stdout), &sts); code != 0 || err != nil || len(sts) != 1 || sts[0].ID != "copy-fail" {
		t.Fatalf("--config FILE -o json mitigations list: exit %d, stdout %q, stderr %q, %v", code, stdout, stderr, err)
	}
	if code, _, stderr := runAgent("mitigations", "list", "--config", filepath.Join(dir, "absent.toml")); code != 1 || !strings.Contains(stderr, "absent.toml") {
		t.Errorf("list with a missing --config: exit %d, stderr %q; want exit 1", code, stderr)
	}

	// Without a configuration file, the daemon's defaults.
	f := mitFlags{config: filepath.Join(dir, "absent.toml")}
	if err := f.resolveDirs(false); err != nil {
		t.Fatal(err)
	}
	c, _ := resolve(fileConfig{}, running.ProcFS{})
	if f.stateDir != c.mitState || f.stateDir != mitigate.DefaultStateDir || f.bpffs != c.bpffs || f.bpffs != mitigate.DefaultBPFFS {
		t.Errorf("one-shot defaults %s, %s; daemon %s, %s; mitigate %s, %s", f.stateDir, f.bpffs, c.mitState, c.bpffs, mitigate.DefaultStateDir, mitigate.DefaultBPFFS)
	}
	// Flags win.
	f = mitFlags{config: cfg, stateDir: "/x"}
	if err := f.resolveDirs(true); err != nil || f.stateDir != "/x" || f.bpffs != filepath.Join(dir, "bpf") {
		t.Errorf("flags and config: %+v, %v", f, err)
	}
}

// pinnedOnly is an Enforcer with pins and nothing else.
type pinnedOnly struct{ ids []string }

func (p pinnedOnly) Available(context.Context) error { return nil }
func (p pinnedOnly) Install(context.Context, policy.Verified) ([]string, error) {
	panic("install without trusted keys")
}
func (p pinnedOnly) Read(id string) (bpf.Mode, bpf.Counters, error) {
	for _, x := range p.ids {
		if x == id {
			return bpf.Enforce, bpf.Counters{}, nil
		}
	}
	return 0, bpf.Counters{}, mitigate.ErrNotInstalled
}
func (p pinnedOnly) Uninstall(id string) error    { panic("unpin without trusted keys: " + id) }
func (p pinnedOnly) Installed() ([]string, error) { return p.ids, nil }

// TestPolicyFuncsWithoutKeys: without trust.policy_keys the daemon still
// has a mitigation manager: heartbeats report the pins, unverified, and
// nothing changes them; they are no expectation after the boot.
func TestPolicyFuncsWithoutKeys(t *testing.T) {
	k, err := kversion.Parse("6.1.100")
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := mitigate.New(mitigate.Config{StateDir: t.TempDir(), Kernel: &k, Enforcer: pinnedOnly{ids: []string{"copy-fail"}}})
	if err != nil {
		t.Fatal(err)
	}
	policies, pinned, lister := policyFuncs(mgr, false)
	if policies == nil || pinned == nil || lister != nil {
		t.Fatalf("policyFuncs: policies %v pinned %v lister %v", policies != nil, pinned != nil, lister)
	}
	ps, err := policies(t.Context())
	if err != nil || len(ps) != 1 || ps[0].ID != "copy-fail" || ps[0].State != wire.PolicyEnforcing || !strings.Contains(ps[0].Detail, "not verified") {
		t.Fatalf("heartbeat policies = %+v, %v; want the pin, enforcing, unverified", ps, err)
	}
	if ps, err := pinned(t.Context()); err != nil || len(ps) != 0 {
		t.Fatalf("pinned = %+v, %v; want nothing expected after the boot", ps, err)
	}
}
