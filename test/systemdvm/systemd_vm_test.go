package systemdvm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/internal/testcoord"
	"github.com/kroll-dev/kroll/internal/testpki"
	"github.com/kroll-dev/kroll/pkg/policy"
	"github.com/kroll-dev/kroll/pkg/signing"
	"github.com/kroll-dev/kroll/pkg/wire"
	"github.com/kroll-dev/kroll/test/vm"
)

const (
	hostID    = "sysvm1"
	dc        = "fra1"
	releaseID = "kroll-systemdvm.1"
	policyID  = "sysvm-alg"
	// stateMarker prefixes the line the guest's kroll-report.service
	// prints on the console once systemd finished booting.
	stateMarker = "KROLL-SYSTEM-STATE "
)

// mitigation denies AF_ALG sockets (a bpf-lsm program); the kernels under
// test do not fix it, so it stays in force across the upgrade.
const mitigation = `id: ` + policyID + `
version: 1
kind: socket-family
mode: enforce
params:
  family: AF_ALG
  operations: [create, bind]
applies_to:
  fixed_in: ["6.1.999"]
expires: 2099-12-31T00:00:00Z
`

// console collects the serial console of a VM.
type console struct {
	mu    sync.Mutex
	lines []string
	log   io.Writer
}

func (c *console) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		l := strings.TrimRight(sc.Text(), "\r")
		c.mu.Lock()
		c.lines = append(c.lines, l)
		if c.log != nil {
			fmt.Fprintln(c.log, l)
		}
		c.mu.Unlock()
	}
}

// grep returns the console lines containing s.
func (c *console) grep(s string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, l := range c.lines {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

func (c *console) tail(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return tailLines(strings.Join(c.lines, "\n"), n)
}

// TestSystemdKexecUpgrade: the kroll-agent .deb installed on a Debian 12
// system (debootstrap) booted under qemu on the oldest 6.1 kernel; systemd
// starts the agent (Type=notify), which registers with the coordinator on
// the host, applies a pushed mitigation policy, stages the newest 6.1
// kernel from its Debian package, takes the slot and kexecs through
// systemd's kexec.target. After the new boot systemd is "running" and the
// agent, started again by systemd, reports the host healthy on the new
// kernel with the policy in force.
func TestSystemdKexecUpgrade(t *testing.T) {
	requireTools(t)
	ctx, cancel := context.WithTimeout(t.Context(), 25*time.Minute)
	defer cancel()
	old := vm.TestOldestKernel(t, vm.Line61)
	newK := vm.TestKernel(t, vm.Line61)
	if old.Release == newK.Release {
		t.Fatalf("need two 6.1 kernels, the archive offers only %s", old.Release)
	}
	base := baseRoot(t, append(append([]string{}, basePackages...), old.Package, newK.Package))
	for _, k := range []*vm.Kernel{old, newK} {
		if _, err := os.Stat(filepath.Join(base, "boot", "initrd.img-"+k.Release)); err != nil {
			t.Fatalf("root file system lacks the initrd of %s: %v", k.Release, err)
		}
	}

	work := t.TempDir()
	deb := agentDeb(t, ctx, work)

	// The coordinator (TLS, agent client certificates) with the release
	// and policy keys, reachable from the guest as 10.0.2.2.
	ca := testpki.NewCA(t)
	relKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{42}, ed25519.SeedSize))
	polKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{43}, ed25519.SeedSize))
	coord := testcoord.Start(t, testcoord.Options{CA: ca, IPs: []string{vm.HostAddr},
		ReleaseKeys: []ed25519.PublicKey{relKey.Public().(ed25519.PublicKey)},
		PolicyKeys:  []ed25519.PublicKey{polKey.Public().(ed25519.PublicKey)}})
	one := 1
	if _, err := coord.Client.SetDatacenter(ctx, dc, wire.DatacenterUpdate{SlotLimit: &one}); err != nil {
		t.Fatal(err)
	}
	p, err := policy.Decode([]byte(mitigation), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sig, err := policy.Sign(polKey, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := coord.Client.PushPolicy(ctx, wire.PolicyPushRequest{Document: mitigation, Signature: sig.Marshal()}); err != nil {
		t.Fatal(err)
	}

	// The guest's root file system: the cached one, the agent package
	// installed with dpkg, its configuration and credentials.
	root := filepath.Join(work, "root")
	start := time.Now()
	run(t, ctx, "", nil, "cp", "-a", "--reflink=auto", base, root)
	if err := os.Remove(filepath.Join(root, ".complete")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "tmp", "kroll-agent.deb"), readFile(t, deb), 0o644)
	// In a private mount namespace: its /proc (systemd-tmpfiles in the
	// postinst wants one) ends with the command.
	out := run(t, ctx, "", []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, "unshare", "--mount", "--propagation", "private",
		"/bin/sh", "-c", `mount -t proc proc "$1/proc" && exec chroot "$1" dpkg -i /tmp/kroll-agent.deb`, "sh", root)
	t.Logf("dpkg -i %s in the image:\n%s", filepath.Base(deb), strings.TrimSpace(out))
	if err := os.Remove(filepath.Join(root, "tmp", "kroll-agent.deb")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/kroll-agent.service")); err != nil {
		t.Fatalf("the package did not enable kroll-agent.service: %v", err)
	}
	configureGuest(t, root, ca, relKey, polKey, coord.Port)
	disk := filepath.Join(work, "disk.img")
	makeDisk(t, ctx, root, disk, 4096)
	vmlinuz, initrd := filepath.Join(work, "vmlinuz"), filepath.Join(work, "initrd.img")
	writeFile(t, vmlinuz, readFile(t, filepath.Join(root, "boot", "vmlinuz-"+old.Release)), 0o644)
	writeFile(t, initrd, readFile(t, filepath.Join(root, "boot", "initrd.img-"+old.Release)), 0o644)
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	t.Logf("guest disk image ready in %s", time.Since(start).Round(100*time.Millisecond))

	// Boot the old kernel with the image's own initramfs.
	// $KROLL_SYSTEMDVM_CONSOLE, when set, names a file that receives the
	// whole serial console (kept after the test).
	logPath := filepath.Join(work, "console.log")
	if p := os.Getenv("KROLL_SYSTEMDVM_CONSOLE"); p != "" {
		logPath = p
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	con := &console{log: logFile}
	vmCtx, vmCancel := context.WithTimeout(ctx, 10*time.Minute)
	defer vmCancel()
	release, err := vm.AcquireSlot(vmCtx)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	qemuDone := startQEMU(t, vmCtx, con, vmlinuz, initrd, disk)
	bootStart := time.Now()
	defer func() {
		if t.Failed() {
			t.Logf("console (%s):\n%s", logPath, con.tail(150))
		}
	}()

	// 1. systemd starts the agent, which registers and applies the policy
	// on the old kernel.
	h := waitHost(t, vmCtx, coord, qemuDone, "registered on the old kernel with the policy enforcing", func(h *wire.Host) bool {
		return h.Kernel == old.Release && policyState(h, policyID) == "enforcing"
	})
	t.Logf("%s after %s: kernel %s, phase %s, policies %+v", hostID, time.Since(bootStart).Round(time.Second), h.Kernel, h.Phase, h.Policies)

	// 2. The release of the newest 6.1 kernel (its Debian package, served
	// over HTTP from the host) becomes the datacenter's target.
	if _, err := coord.Client.AddRelease(ctx, vm.DebRelease(t, relKey, releaseID, "6.1", newK)); err != nil {
		t.Fatal(err)
	}
	target := releaseID
	if _, err := coord.Client.SetDatacenter(ctx, dc, wire.DatacenterUpdate{TargetRelease: &target}); err != nil {
		t.Fatal(err)
	}
	targeted := time.Now()

	// 3. Staged, slot, kexec.target, new boot, verified, healthy.
	h = waitHost(t, vmCtx, coord, qemuDone, "healthy on the new kernel", func(h *wire.Host) bool {
		return h.Kernel == newK.Release && h.Phase == wire.PhaseIdle && h.Slot == nil && !h.Unhealthy &&
			policyState(h, policyID) == "enforcing" && hasEvent(t, ctx, coord, "host_healthy")
	})
	t.Logf("%s %s after the target was set: kernel %s, phase %s, slot %v, unhealthy %v, policies %+v",
		hostID, time.Since(targeted).Round(time.Second), h.Kernel, h.Phase, h.Slot, h.Unhealthy, h.Policies)

	// systemd on the new boot reports "running" (the guest prints its
	// state once the boot finished; the agent checked it too).
	waitConsole(t, vmCtx, con, qemuDone, stateMarker+newK.Release+" running")
	vmCancel()
	<-qemuDone

	for _, want := range []struct {
		what, s string
		n       int
	}{
		{"the first kernel booted", "Linux version " + old.Release, 1},
		{"systemd started the agent (READY) in both boots", "Started kroll-agent.service", 2},
		{"the agent asked for kexec.target", "starting kexec.target", 1},
		{"systemd stopped the agent for kexec.target", "systemd[1]: Stopping kroll-agent.service", 1},
		{"the agent exited cleanly", "systemd[1]: kroll-agent.service: Deactivated successfully.", 1},
		{"systemd ran systemd-kexec.service (kexec.target)", "systemd[1]: Starting systemd-kexec.service - Reboot via kexec", 1},
		{"the kernel kexeced", "kexec_core: Starting new kernel", 1},
		{"the new kernel booted", "Linux version " + newK.Release, 1},
		{"systemd was running on the old kernel", stateMarker + old.Release + " running", 1},
		{"systemd was running on the new kernel", stateMarker + newK.Release + " running", 1},
	} {
		if got := con.grep(want.s); len(got) != want.n {
			t.Errorf("%s: %d console lines with %q, want %d: %q", want.what, len(got), want.s, want.n, got)
		}
	}
	if f := con.grep("KROLL-FAILED "); len(f) > 0 {
		t.Errorf("failed units: %q", f)
	}
	for _, l := range con.grep(stateMarker) {
		t.Logf("console: %s", strings.TrimSpace(l))
	}
	for _, l := range con.grep("systemd[1]: Started kroll-agent.service") {
		t.Logf("console: %s", strings.TrimSpace(l))
	}
	for _, l := range append(con.grep("systemd[1]: Starting systemd-kexec.service"), con.grep("Starting new kernel")...) {
		t.Logf("console: %s", strings.TrimSpace(l))
	}
	evs, err := coord.Client.Events(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		if e.Host == hostID || e.Host == "" {
			types = append(types, e.Type)
		}
	}
	t.Logf("coordinator events: %s", strings.Join(types, ", "))
	for _, typ := range []string{"slot_granted", "host_healthy", "slot_released"} {
		if !strings.Contains(","+strings.Join(types, ",")+",", ","+typ+",") {
			t.Errorf("no %s event", typ)
		}
	}
	t.Logf("uname -r before: %s, after: %s; VM ran %s", old.Release, newK.Release, time.Since(bootStart).Round(time.Second))
}

// agentDeb builds the agent binaries and the kroll-agent .deb with `make
// packages-only` and returns the .deb's path.
func agentDeb(t *testing.T, ctx context.Context, work string) string {
	t.Helper()
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin, dist := filepath.Join(work, "bin"), filepath.Join(work, "dist")
	for name, pkg := range map[string]string{
		"kroll-agent":       "./agent/cmd/kroll-agent",
		"kroll-coordinator": "./coordinator/cmd/kroll-coordinator",
		"krollctl":          "./coordinator/cmd/krollctl",
	} {
		run(t, ctx, repo, []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64"}, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(bin, name), pkg)
	}
	run(t, ctx, repo, nil, "make", "--no-print-directory", "packages-only", "PKG_VERSION=1.0.0", "PKG_ARCH=amd64", "PKG_BIN="+bin, "PKG_DIST="+dist)
	m, _ := filepath.Glob(filepath.Join(dist, "kroll-agent_1.0.0-1_amd64.deb"))
	if len(m) != 1 {
		t.Fatalf("make packages-only made no kroll-agent .deb in %s", dist)
	}
	return m[0]
}

// configureGuest writes the agent's configuration and credentials, the
// network configuration and the few settings a VM needs into root.
func configureGuest(t *testing.T, root string, ca *testpki.CA, relKey, polKey ed25519.PrivateKey, port string) {
	t.Helper()
	pki := filepath.Join(root, "etc/kroll/pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, caFile := ca.WriteFiles(t, t.TempDir(), ca.Issue(t, "agent", hostID))
	writeFile(t, filepath.Join(pki, "ca.pem"), readFile(t, caFile), 0o644)
	writeFile(t, filepath.Join(pki, "agent.pem"), readFile(t, certFile), 0o644)
	writeFile(t, filepath.Join(pki, "agent.key"), readFile(t, keyFile), 0o600)
	for name, k := range map[string]ed25519.PrivateKey{"release.pub": relKey, "policy.pub": polKey} {
		pem, err := signing.MarshalPublicKey(k.Public().(ed25519.PublicKey))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(root, "etc/kroll", name), pem, 0o644)
	}
	files := map[string]string{
		"etc/kroll/agent.toml": fmt.Sprintf(`# Written by test/systemdvm.
host_id = %q
datacenter = %q
kernel_line = "6.1"
[coordinator]
urls = ["https://%s:%s"]
ca_file = "/etc/kroll/pki/ca.pem"
cert_file = "/etc/kroll/pki/agent.pem"
key_file = "/etc/kroll/pki/agent.key"
[trust]
release_keys = ["/etc/kroll/release.pub"]
policy_keys = ["/etc/kroll/policy.pub"]
[drain]
deadline = "5s"
poll = "500ms"
[boot]
mode = "kexec"
loader = "none"
[timing]
retry_interval = "2s"
heartbeat_interval = "2s"
renew_interval = "10s"
`, hostID, dc, vm.HostAddr, port),
		"etc/hostname":   "kroll-sysvm\n",
		"etc/machine-id": "0f4b2c1e8d7a4c5e9b3a6d2f1e0c9b8a\n",
		"etc/fstab":      "/dev/vda / ext4 rw 0 1\n",
		// qemu user networking: the host's loopback is 10.0.2.2.
		"etc/systemd/network/10-eth0.network": "[Match]\nName=eth0\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\n",
		// The journal (the agent's log among it) on the serial console.
		"etc/systemd/journald.conf.d/console.conf": "[Journal]\nForwardToConsole=yes\nTTYPath=/dev/ttyS0\nMaxLevelConsole=info\n",
		// Prints systemd's state once the boot finished (Type=exec: the
		// job is done when the shell runs, so it does not hold the boot).
		"etc/systemd/system/kroll-report.service": `[Unit]
Description=report the system state on the console
After=multi-user.target
[Service]
Type=exec
StandardOutput=tty
TTYPath=/dev/ttyS0
ExecStart=/bin/sh -c 's=$(systemctl is-system-running --wait); echo "` + stateMarker + `$(uname -r) $s"; systemctl --failed --no-legend --plain | sed "s/^/KROLL-FAILED /"'
[Install]
WantedBy=multi-user.target
`,
	}
	for rel, content := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(root, rel), []byte(content), 0o644)
	}
	links := map[string]string{
		"etc/systemd/system/multi-user.target.wants/kroll-report.service":     "/etc/systemd/system/kroll-report.service",
		"etc/systemd/system/multi-user.target.wants/systemd-networkd.service": "/lib/systemd/system/systemd-networkd.service",
		"etc/systemd/system/sockets.target.wants/systemd-networkd.socket":     "/lib/systemd/system/systemd-networkd.socket",
		// No login prompt on the serial console: it would mix with the log.
		"etc/systemd/system/serial-getty@ttyS0.service": "/dev/null",
	}
	for rel, target := range links {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		_ = os.Remove(p)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
}

// makeDisk writes root into a fresh ext4 image of sizeMB MiB.
func makeDisk(t *testing.T, ctx context.Context, root, out string, sizeMB int64) {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(sizeMB << 20); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	mkfs, err := vm.LookSbin("mke2fs")
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "", nil, mkfs, "-q", "-F", "-t", "ext4", "-L", "kroll-root", "-d", root, out)
}

// startQEMU boots the disk image under TCG; the returned channel is closed
// when qemu ended. qemu is killed when ctx ends or the test ends.
func startQEMU(t *testing.T, ctx context.Context, con *console, vmlinuz, initrd, disk string) <-chan struct{} {
	t.Helper()
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		vm.Unavailable(t, err)
	}
	cmdline := []string{"root=/dev/vda", "rw", "console=ttyS0", "panic=-1", "loglevel=6", "net.ifnames=0", "lsm=" + vm.DefaultLSM}
	cmd := exec.CommandContext(ctx, qemu,
		"-accel", "tcg", "-nodefaults", "-no-reboot", "-display", "none",
		"-m", "1024", "-smp", "1", "-cpu", "max",
		"-serial", "stdio", "-monitor", "none",
		"-kernel", vmlinuz, "-initrd", initrd, "-append", strings.Join(cmdline, " "),
		"-drive", "file="+disk+",format=raw,if=none,id=root", "-device", "virtio-blk-pci,drive=root",
		"-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		con.read(stdout)
		err := cmd.Wait()
		if ctx.Err() == nil {
			con.mu.Lock()
			con.lines = append(con.lines, fmt.Sprintf("(qemu exited: %v %s)", err, bytes.TrimSpace(stderr.Bytes())))
			con.mu.Unlock()
		}
		close(done)
	}()
	t.Cleanup(func() {
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
		}
		<-done
	})
	return done
}

// waitHost polls the coordinator's view of the host until ok holds; it
// fails the test when qemu ends, the host fails or ctx ends first.
func waitHost(t *testing.T, ctx context.Context, coord *testcoord.Coordinator, qemuDone <-chan struct{}, what string, ok func(*wire.Host) bool) *wire.Host {
	t.Helper()
	var last *wire.Host
	for {
		h, err := coord.Client.Host(ctx, hostID)
		if err == nil {
			last = h
			if ok(h) {
				return h
			}
			if h.Phase == wire.PhaseFailed || h.Unhealthy {
				t.Fatalf("waiting until %s: the host failed: phase %s, unhealthy %v, kernel %s", what, h.Phase, h.Unhealthy, h.Kernel)
			}
		}
		select {
		case <-qemuDone:
			t.Fatalf("waiting until %s: qemu ended; last view of the host: %+v", what, last)
		case <-ctx.Done():
			t.Fatalf("waiting until %s: %v; last view of the host: %+v", what, ctx.Err(), last)
		case <-time.After(2 * time.Second):
		}
	}
}

// waitConsole waits for a console line containing s.
func waitConsole(t *testing.T, ctx context.Context, con *console, qemuDone <-chan struct{}, s string) {
	t.Helper()
	for len(con.grep(s)) == 0 {
		select {
		case <-qemuDone:
			t.Fatalf("qemu ended before the console showed %q", s)
		case <-ctx.Done():
			t.Fatalf("the console did not show %q: %v", s, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

func policyState(h *wire.Host, id string) string {
	for _, p := range h.Policies {
		if p.ID == id {
			return string(p.State)
		}
	}
	return ""
}

func hasEvent(t *testing.T, ctx context.Context, coord *testcoord.Coordinator, typ string) bool {
	t.Helper()
	evs, err := coord.Client.Events(ctx, 0, 0)
	if err != nil {
		return false
	}
	for _, e := range evs {
		if e.Type == typ && e.Host == hostID {
			return true
		}
	}
	return false
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}
