package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/kroll-dev/kroll/pkg/cli"
)

func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{args: []string{"--help"}, code: 0, inStdout: "kroll-agent [command]"},
		{args: []string{"mitigations", "--help"}, code: 0, inStdout: "kroll-agent mitigations [command]"},
		{args: []string{"mitigations", "list", "--help"}, code: 0, inStdout: "kroll-agent mitigations list [flags]"},
		{args: []string{"run", "--help"}, code: 0, inStdout: "  kroll-agent run [flags]\n"},
		{args: []string{"help", "run"}, code: 0, inStdout: "  kroll-agent run [flags]\n"},
		{args: []string{"status", "-o", "yaml"}, code: 2, inStderr: `kroll-agent: --output "yaml": want table or json`},
		{args: []string{"--config", "/nonexistent/agent.toml", "status"}, code: 1, inStderr: "/nonexistent/agent.toml"},
		{args: []string{"status", "--config", "/nonexistent/agent.toml"}, code: 1, inStderr: "/nonexistent/agent.toml"},
		{args: []string{"completion", "bash"}, code: 0, inStdout: "bash completion V2 for kroll-agent"},
		{args: []string{"completion", "zsh"}, code: 0, inStdout: "#compdef kroll-agent"},
		{args: []string{"completion", "fish"}, code: 0, inStdout: "complete -c kroll-agent"},
		{args: []string{"version"}, code: 0, inStdout: "kroll-agent dev"},
		{args: nil, code: 2, inStderr: "kroll-agent: no command given"},
		{args: []string{"frobnicate"}, code: 2, inStderr: `kroll-agent: unknown command "frobnicate"`},
	} {
		t.Run(strings.Join(tc.args, "_"), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			env := cli.Env{Name: "kroll-agent", Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
			code := cli.ExitCode(env, run(context.Background(), env, tc.args))
			if code != tc.code || !strings.Contains(stdout.String(), tc.inStdout) || !strings.Contains(stderr.String(), tc.inStderr) {
				t.Fatalf("exit %d stdout %q stderr %q; want exit %d, stdout ∋ %q, stderr ∋ %q",
					code, stdout.String(), stderr.String(), tc.code, tc.inStdout, tc.inStderr)
			}
			if n := strings.Count(stderr.String(), "\n"); n > 1 {
				t.Errorf("error spans %d lines, want one", n)
			}
		})
	}
}
