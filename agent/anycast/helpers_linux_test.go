package anycast

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netns"
)

// requireRoot skips (or fails under CI=true) when the test cannot create
// network namespaces.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("test needs root (CI=true)")
		}
		t.Skip("test needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ip not found: %v", err)
		}
		t.Skip("ip (iproute2) not found")
	}
}

// run runs a command and fails the test on error.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newNS creates a named network namespace with lo up, removed on cleanup.
func newNS(t *testing.T, prefix string) (string, netns.NsHandle) {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "kroll-" + prefix + "-" + hex.EncodeToString(b)
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", name, err, out)
		}
	})
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("open netns %s: %v", name, err)
	}
	t.Cleanup(func() { _ = h.Close() })
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name, h
}

// inNS runs fn on a locked OS thread switched into ns. Sockets created by
// fn stay in ns after it returns.
func inNS(t *testing.T, ns netns.NsHandle, fn func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			done <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			done <- err
			return
		}
		fn()
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked so the runtime discards it.
			done <- err
			return
		}
		runtime.UnlockOSThread()
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatalf("run in netns: %v", err)
	}
}
