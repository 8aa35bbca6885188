package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/policy"
	"github.com/kroll-dev/kroll/pkg/signing"
	"github.com/kroll-dev/kroll/test/vm"
)

func runAgent(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	env := cli.Env{Name: "kroll-agent", Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
	code := cli.ExitCode(env, run(context.Background(), env, args))
	return code, stdout.String(), stderr.String()
}

func TestMitigationsUsage(t *testing.T) {
	for _, args := range [][]string{
		{"mitigations"},
		{"mitigations", "frob"},
		{"mitigations", "apply", "--trusted-key", "k.pub"},
		{"mitigations", "apply", "p.yaml"},
		{"mitigations", "remove"},
		{"mitigations", "list", "x"},
	} {
		if code, _, stderr := runAgent(args...); code != 2 || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%q: exit %d, stderr %q; want 2 and one line", args, code, stderr)
		}
	}
}

// TestMitigationsApplyUnavailable runs `mitigations apply` on the
// development machine's own kernel, which refuses LSM programs: it must
// print the policy as unavailable and fail with one line saying why.
func TestMitigationsApplyUnavailable(t *testing.T) {
	if os.Geteuid() != 0 {
		if vm.CI() {
			t.Fatal("needs root to try loading LSM programs on the host")
		}
		t.Skip("needs root")
	}
	dir := t.TempDir()
	if _, err := signing.GenerateKeyFiles(filepath.Join(dir, "op"), false); err != nil {
		t.Fatal(err)
	}
	priv, err := signing.LoadPrivateKey(filepath.Join(dir, "op.key"))
	if err != nil {
		t.Fatal(err)
	}
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
	sig, err := policy.Sign(ed25519.PrivateKey(priv), p)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "copy-fail.json")
	if err := os.WriteFile(path, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".sig", sig.Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runAgent("mitigations", "apply", "--trusted-key", filepath.Join(dir, "op.pub"),
		"--state-dir", filepath.Join(dir, "state"), "--bpffs", "/sys/fs/bpf/kroll-cli-test", path)
	if code != 1 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "bpf-lsm unavailable") ||
		!strings.Contains(stdout, "unavailable: ") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit 1, the policy listed unavailable and one error line", code, stdout, stderr)
	}
	t.Logf("stdout: %sstderr: %s", stdout, stderr)
	code, stdout, _ = runAgent("mitigations", "list", "--state-dir", filepath.Join(dir, "state"), "--bpffs", "/sys/fs/bpf/kroll-cli-test")
	if code != 0 || !strings.Contains(stdout, "copy-fail\tv1\tsocket-family\tunavailable: ") {
		t.Errorf("list: exit %d stdout %q", code, stdout)
	}
}
