package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/kroll-dev/kroll/pkg/cli"
)

func TestCommandLine(t *testing.T) {
	good := []string{"--node-id", "c1", "--data-dir", "/tmp/x", "--raft-addr", "127.0.0.1:7001",
		"--http-addr", "127.0.0.1:8001", "--peers", "c1=127.0.0.1:7001,c2=127.0.0.1:7002,c3=127.0.0.1:7003"}
	with := func(flag, value string) []string {
		out := append([]string(nil), good...)
		for i := range out {
			if out[i] == flag {
				out[i+1] = value
			}
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{"help", []string{"--help"}, 0, "Usage: kroll-coordinator --node-id", ""},
		{"version", []string{"version"}, 0, "kroll-coordinator dev", ""},
		{"bad-flag", []string{"--nope"}, 2, "", "flag provided but not defined: -nope"},
		{"no-flags", nil, 2, "", "--node-id"},
		{"non-loopback-without-tls", with("--http-addr", "0.0.0.0:8001"), 2, "", "--http-addr 0.0.0.0:8001 is not a loopback address"},
		{"node-not-in-peers", with("--node-id", "c9"), 2, "", `--peers does not list --node-id "c9"`},
		{"raft-addr-mismatch", with("--raft-addr", "127.0.0.1:7009"), 2, "", "--peers lists c1=127.0.0.1:7001 but --raft-addr is 127.0.0.1:7009"},
		{"bad-peers", with("--peers", "c1"), 2, "", `--peers: "c1" is not ID=HOST:PORT`},
		{"partial-tls", append(with("--http-addr", "10.1.2.3:8001"), "--tls-cert", "c.pem"), 2, "", "go together"},
		{"peer-ca-without-tls", append(with("--http-addr", "127.0.0.1:8001"), "--peer-tls-ca", "p.pem"), 2, "", "--peer-tls-ca needs --tls-cert"},
		{"cluster-without-tls-or-peer-token", good, 2, "", "without TLS, Raft peers authenticate with the peer token: set auth.peer_token_file"},
		{"join-without-tls-or-peer-token", append(with("--peers", "c2=127.0.0.1:7002"), "--join"), 2, "", "auth.peer_token_file"},
		{"join-without-peers", append(with("--peers", ""), "--join"), 2, "", "--join needs --peers"},
		{"join-listing-only-itself", append(with("--peers", "c1=127.0.0.1:7001"), "--join"), 2, "", "--peers lists no member of the cluster other than --node-id"},
		{"join-with-peers-not-listing-itself", append(with("--peers", "c2=127.0.0.1:7002,c3=127.0.0.1:7003"), "--join"), 2, "", "auth.peer_token_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			env := cli.Env{Name: "kroll-coordinator", Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
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
