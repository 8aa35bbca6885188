package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kroll-dev/kroll/pkg/cli"
)

// krollctl runs the CLI in-process and returns exit code, stdout, stderr.
func krollctl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := cli.Env{Name: "krollctl", Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
	code := cli.ExitCode(env, run(context.Background(), env, args))
	if n := strings.Count(stderr.String(), "\n"); n > 1 {
		t.Errorf("krollctl %v: error spans %d lines, want one: %q", args, n, stderr.String())
	}
	return code, stdout.String(), stderr.String()
}

func copyExample(t *testing.T, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestKeygenSignVerify(t *testing.T) {
	dir := t.TempDir()
	ops := filepath.Join(dir, "ops")
	other := filepath.Join(dir, "other")
	pol := copyExample(t, dir, "copy-fail.yaml")
	rel := copyExample(t, dir, "release-6.12.117.json")
	polData, _ := os.ReadFile(pol)

	steps := []struct {
		name     string
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{"keygen", []string{"keygen", "--out", ops}, 0, "wrote " + ops + ".key", ""},
		{"keygen-other", []string{"keygen", "--out", other}, 0, "key id", ""},
		{"keygen-refuses-overwrite", []string{"keygen", "--out", ops}, 1, "", "force"},
		{"keygen-no-out", []string{"keygen"}, 2, "", "usage: krollctl keygen --out PREFIX"},
		{"sign-policy", []string{"sign", "--key", ops + ".key", pol}, 0, "signed policy", ""},
		{"verify-policy", []string{"verify", "--key", ops + ".pub", pol}, 0, "valid policy signed by key", ""},
		{"verify-with-any-trusted-key", []string{"verify", "--key", other + ".pub", "--key", ops + ".pub", pol}, 0, "valid policy", ""},
		{"verify-untrusted-key", []string{"verify", "--key", other + ".pub", pol}, 1, "", "not trusted"},
		{"sign-release", []string{"sign", "--key", ops + ".key", rel}, 0, "signed release manifest", ""},
		{"verify-release", []string{"verify", "--key", ops + ".pub", rel}, 0, "valid release manifest", ""},
		{"policy-sig-is-not-a-release-sig", []string{"verify", "--key", ops + ".pub", "--signature", pol + ".sig", rel}, 1, "", "policy"},
		{"sign-with-public-key", []string{"sign", "--key", ops + ".pub", pol}, 1, "", ops + ".pub"},
		{"sign-wrong-type", []string{"sign", "--type", "release", "--key", ops + ".key", pol}, 1, "", "decode release manifest"},
		{"sign-bad-type", []string{"sign", "--type", "deb", "--key", ops + ".key", pol}, 2, "", `--type "deb"`},
		{"sign-missing-file", []string{"sign", "--key", ops + ".key", filepath.Join(dir, "nope")}, 1, "", "no such file"},
		{"verify-no-key", []string{"verify", pol}, 2, "", "usage: krollctl verify"},
		{"unknown-flag", []string{"sign", "--nope"}, 2, "", "unknown flag: --nope (see 'krollctl sign --help')"},
		{"old-sig-flag", []string{"verify", "--key", ops + ".pub", "--sig", pol + ".sig", pol}, 0, "valid policy", "--sig is deprecated, use --signature"},
		{"verify-json", []string{"verify", "-o", "json", "--key", ops + ".pub", pol}, 0, `"valid": true`, ""},
		{"help", []string{"--help"}, 0, "keygen", ""},
		{"sign-help", []string{"sign", "--help"}, 0, "krollctl " + signUsage, ""},
		{"keygen-json", []string{"keygen", "--out", filepath.Join(dir, "third"), "--output=json"}, 0, `"key_id": "`, ""},
		{"version", []string{"version"}, 0, "krollctl dev", ""},
	}
	for _, s := range steps {
		code, stdout, stderr := krollctl(t, s.args...)
		if code != s.code || !strings.Contains(stdout, s.inStdout) || !strings.Contains(stderr, s.inStderr) {
			t.Fatalf("%s: exit %d stdout %q stderr %q; want exit %d, stdout ∋ %q, stderr ∋ %q",
				s.name, code, stdout, stderr, s.code, s.inStdout, s.inStderr)
		}
	}
	if st, err := os.Stat(ops + ".key"); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode: %v %v", st.Mode(), err)
	}

	// Tampering: audit → enforce without re-signing must not verify.
	tampered := bytes.Replace(polData, []byte("mode: audit"), []byte("mode: enforce"), 1)
	if bytes.Equal(tampered, polData) {
		t.Fatal("example policy has no 'mode: audit' to tamper with")
	}
	if err := os.WriteFile(pol, tampered, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := krollctl(t, "verify", "--key", ops+".pub", pol); code != 1 || !strings.Contains(stderr, "does not match") {
		t.Fatalf("tampered policy: exit %d, stderr %q; want exit 1 and a mismatch", code, stderr)
	}

	// The same policy as JSON, fields in another order, keeps the
	// signature valid: it covers the canonical encoding.
	asJSON := `{"expires":"2099-12-31T00:00:00Z","applies_to":{"datacenters":[],"fixed_in":["6.12.85","6.18.22","6.1.170"]},
	  "params":{"allow_exe":["/usr/sbin/charon"],"operations":["create","bind"],"family":"AF_ALG"},
	  "mode":"audit","kind":"socket-family","version":1,"cve":"CVE-2026-31431","id":"copy-fail"}`
	if err := os.WriteFile(pol, []byte(asJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := krollctl(t, "verify", "--key", ops+".pub", pol); code != 0 {
		t.Fatalf("policy as JSON: exit %d, %s", code, stderr)
	}
}
