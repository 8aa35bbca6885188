package vm

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// BuildGo compiles the Go main package pkg (an import path or a directory)
// into a static linux/amd64 binary in dir and returns its path.
func BuildGo(ctx context.Context, pkg, dir string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("vm: go build %s: %w: %s", pkg, err, bytes.TrimSpace(b))
	}
	return out, nil
}

// CI reports whether the tests run in CI (CI=true), where a missing
// dependency is a failure, never a skip.
func CI() bool { return os.Getenv("CI") == "true" }

// Unavailable ends a test whose dependency is missing: a failure in CI,
// a skip elsewhere.
func Unavailable(t testing.TB, err error) {
	t.Helper()
	if CI() {
		t.Fatalf("VM dependency missing (CI=true, so this fails; 'make deps' installs it): %v", err)
	}
	t.Skipf("VM dependency missing (run 'make deps'): %v", err)
}

// RequireTools checks that qemu and busybox-static are installed.
func RequireTools(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("VM tier: skipped in -short mode (make test-unit); make test runs it")
	}
	for _, tool := range []string{"qemu-system-x86_64", "busybox", "apt-get", "dpkg"} {
		if _, err := exec.LookPath(tool); err != nil {
			Unavailable(t, err)
		}
	}
}

// TestKernel fetches the newest kernel package matching pattern for a
// test, failing in CI and skipping elsewhere when it cannot.
func TestKernel(t testing.TB, pattern *regexp.Regexp) *Kernel {
	t.Helper()
	RequireTools(t)
	k, err := NewestKernel(t.Context(), pattern)
	if err != nil {
		Unavailable(t, err)
	}
	return k
}

// TestOldestKernel is TestKernel for the oldest matching package.
func TestOldestKernel(t testing.TB, pattern *regexp.Regexp) *Kernel {
	t.Helper()
	RequireTools(t)
	k, err := OldestKernel(t.Context(), pattern)
	if err != nil {
		Unavailable(t, err)
	}
	return k
}

// TestProgram builds a guest program for a test (see BuildGo).
func TestProgram(t testing.TB, pkg string) string {
	t.Helper()
	p, err := BuildGo(t.Context(), pkg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return p
}
