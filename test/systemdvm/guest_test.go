package systemdvm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
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
	// diskMB is the size of the guest's disk image (sparse).
	diskMB = 4096
	// anycastTable and anycastAddr: the guest's kroll-anycast.service puts
	// a route to anycastAddr (on a dummy interface) into anycastTable at
	// boot, as a BGP daemon's table would hold it; the agent withdraws it.
	anycastTable = 100
	anycastAddr  = "192.0.2.1"

	// Console markers printed by the guest's units (see configureGuest).
	stateMarker    = "KROLL-SYSTEM-STATE "
	modprobeMarker = "KROLL-MODPROBE "
	dpkgMarker     = "KROLL-DPKG "
	initrdMarker   = "KROLL-INITRD "
	watchMarker    = "KROLL-WATCH "
	failedMarker   = "KROLL-FAILED "
	// grubMarker is what Debian's grub.cfg prints (serial terminal) when
	// GRUB boots a kernel: "Loading Linux 6.1.0-47-amd64 ...".
	grubMarker = "Loading Linux "
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

// console collects the serial console of a VM, each line with the time it
// arrived.
type console struct {
	mu    sync.Mutex
	lines []string
	at    []time.Time
	log   io.Writer
}

func (c *console) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		c.add(strings.TrimRight(sc.Text(), "\r"))
	}
}

func (c *console) add(l string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = append(c.lines, l)
	c.at = append(c.at, time.Now())
	if c.log != nil {
		fmt.Fprintln(c.log, l)
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

// first returns the arrival time of the first line containing s after
// time after, and whether there is one.
func (c *console) first(s string, after time.Time) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, l := range c.lines {
		if c.at[i].After(after) && strings.Contains(l, s) {
			return c.at[i], true
		}
	}
	return time.Time{}, false
}

func (c *console) tail(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return tailLines(strings.Join(c.lines, "\n"), n)
}

// watchLine is one line of the guest's kroll-watch.service: the running
// kernel, the number of routes in the anycast table and GRUB's environment
// block (grub-editenv list), printed whenever one of them changes.
type watchLine struct {
	release string
	routes  string
	env     map[string]string
}

// parseWatch parses "KROLL-WATCH <release> routes=<n> env=<k=v|k=v...>".
func parseWatch(l string) (watchLine, bool) {
	i := strings.Index(l, watchMarker)
	if i < 0 {
		return watchLine{}, false
	}
	rel, rest, ok := strings.Cut(l[i+len(watchMarker):], " routes=")
	if !ok {
		return watchLine{}, false
	}
	routes, env, ok := strings.Cut(rest, " env=")
	if !ok {
		return watchLine{}, false
	}
	return watchLine{release: rel, routes: routes, env: grubenv(strings.ReplaceAll(env, "|", "\n"))}, true
}

// guestConfig is what differs between the scenarios.
type guestConfig struct {
	// bootMode is [boot] mode: "kexec" or "reboot".
	bootMode string
	// loader is [boot] loader ("" leaves it out).
	loader string
	// install is [install] mode ("" leaves it out).
	install string
	// failOnTarget adds a [[health.commands]] that fails while the
	// target kernel runs.
	failOnTarget bool
	// reboots lets qemu restart the guest through the firmware on a reboot
	// (no -no-reboot).
	reboots bool
}

// rig is one guest under test: its coordinator, disk and running qemu.
type rig struct {
	t           *testing.T
	cfg         guestConfig
	old, target *vm.Kernel
	relKey      ed25519.PrivateKey
	coord       *testcoord.Coordinator
	disk, uuid  string
	con         *console
	qemuDone    <-chan struct{}
	qmp         string
	booted      time.Time
	targeted    time.Time
	timeline    *timeline
}

// startRig builds the guest's disk (the cached Debian 12 root file system
// with the old kernel only, the agent .deb installed with dpkg, GRUB in the
// MBR), boots it under qemu through SeaBIOS and GRUB and waits until the
// agent registered on the old kernel with the mitigation policy enforcing.
func startRig(t *testing.T, ctx context.Context, cfg guestConfig) *rig {
	t.Helper()
	requireTools(t)
	r := &rig{t: t, cfg: cfg}
	r.old = vm.TestOldestKernel(t, vm.Line61)
	r.target = vm.TestKernel(t, vm.Line61)
	if r.old.Release == r.target.Release {
		t.Fatalf("need two 6.1 kernels, the archive offers only %s", r.old.Release)
	}
	base := baseRoot(t, append(append([]string{}, basePackages...), r.old.Package))
	if _, err := os.Stat(filepath.Join(base, "boot", "initrd.img-"+r.old.Release)); err != nil {
		t.Fatalf("root file system lacks the initrd of %s: %v", r.old.Release, err)
	}
	for _, p := range []string{"boot/vmlinuz-" + r.target.Release, "lib/modules/" + r.target.Release} {
		if _, err := os.Stat(filepath.Join(base, p)); err == nil {
			t.Fatalf("the root file system must not hold the target kernel, but has /%s", p)
		}
	}

	work := t.TempDir()
	deb := agentDeb(t, ctx, work)

	// The coordinator (TLS, agent client certificates) with the release
	// and policy keys, reachable from the guest as 10.0.2.2.
	ca := testpki.NewCA(t)
	r.relKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{42}, ed25519.SeedSize))
	polKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{43}, ed25519.SeedSize))
	r.coord = testcoord.Start(t, testcoord.Options{CA: ca, IPs: []string{vm.HostAddr},
		ReleaseKeys: []ed25519.PublicKey{r.relKey.Public().(ed25519.PublicKey)},
		PolicyKeys:  []ed25519.PublicKey{polKey.Public().(ed25519.PublicKey)}})
	one := 1
	if _, err := r.coord.Client.SetDatacenter(ctx, dc, wire.DatacenterUpdate{SlotLimit: &one}); err != nil {
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
	if _, err := r.coord.Client.PushPolicy(ctx, wire.PolicyPushRequest{Document: mitigation, Signature: sig.Marshal()}); err != nil {
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
	r.uuid = newUUID(t)
	r.configureGuest(root, ca, polKey)
	r.disk = filepath.Join(work, "disk.img")
	makeBootDisk(t, ctx, root, r.disk, diskMB, r.uuid, r.old.Release)
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	t.Logf("guest disk image ready in %s", time.Since(start).Round(100*time.Millisecond))

	// $KROLL_SYSTEMDVM_CONSOLE, when set, names a directory that receives
	// the whole serial console of each test (kept after the test).
	logPath := filepath.Join(work, "console.log")
	if d := os.Getenv("KROLL_SYSTEMDVM_CONSOLE"); d != "" {
		logPath = filepath.Join(d, t.Name()+".console.log")
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	r.con = &console{log: logFile}
	release, err := vm.AcquireSlot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	r.qmp = filepath.Join(work, "qmp.sock")
	r.qemuDone = startQEMU(t, ctx, r.con, r.disk, r.qmp, cfg.reboots)
	r.booted = time.Now()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("console (%s):\n%s", logPath, r.con.tail(200))
		}
	})

	// systemd starts the agent, which registers and applies the policy on
	// the old kernel, booted from the disk by GRUB.
	h := r.waitHost(ctx, "registered on the old kernel with the policy enforcing", false, func(h *wire.Host) bool {
		return h.Kernel == r.old.Release && policyState(h, policyID) == "enforcing"
	})
	t.Logf("%s after %s: kernel %s, phase %s, policies %+v", hostID, time.Since(r.booted).Round(time.Second), h.Kernel, h.Phase, h.Policies)
	r.waitConsole(ctx, stateMarker+r.old.Release+" running")
	for _, want := range []string{grubMarker + r.old.Release + " ...", "Linux version " + r.old.Release, "root=UUID=" + r.uuid} {
		if len(r.con.grep(want)) == 0 {
			t.Fatalf("the first boot did not go through GRUB: no console line with %q", want)
		}
	}
	if l := r.con.grep("SeaBIOS"); len(l) > 0 {
		t.Logf("console: %s", strings.TrimSpace(l[0]))
	}
	return r
}

// roll makes the target kernel's release (its Debian package, served over
// HTTP from the host) the datacenter's target and starts recording the
// host's phases.
func (r *rig) roll(ctx context.Context) {
	r.t.Helper()
	if _, err := r.coord.Client.AddRelease(ctx, vm.DebRelease(r.t, r.relKey, releaseID, "6.1", r.target)); err != nil {
		r.t.Fatal(err)
	}
	target := releaseID
	if _, err := r.coord.Client.SetDatacenter(ctx, dc, wire.DatacenterUpdate{TargetRelease: &target}); err != nil {
		r.t.Fatal(err)
	}
	r.targeted = time.Now()
	r.timeline = recordPhases(r.t, ctx, r.coord, r.targeted)
}

// configureGuest writes the agent's configuration and credentials, GRUB's
// settings, the network configuration, the anycast route and the
// reporting units into root.
func (r *rig) configureGuest(root string, ca *testpki.CA, polKey ed25519.PrivateKey) {
	t := r.t
	t.Helper()
	pki := filepath.Join(root, "etc/kroll/pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, caFile := ca.WriteFiles(t, t.TempDir(), ca.Issue(t, "agent", hostID))
	writeFile(t, filepath.Join(pki, "ca.pem"), readFile(t, caFile), 0o644)
	writeFile(t, filepath.Join(pki, "agent.pem"), readFile(t, certFile), 0o644)
	writeFile(t, filepath.Join(pki, "agent.key"), readFile(t, keyFile), 0o600)
	for name, k := range map[string]ed25519.PrivateKey{"release.pub": r.relKey, "policy.pub": polKey} {
		pem, err := signing.MarshalPublicKey(k.Public().(ed25519.PublicKey))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(root, "etc/kroll", name), pem, 0o644)
	}
	files := map[string]string{
		"etc/kroll/agent.toml": r.agentTOML(),
		"etc/hostname":         "kroll-sysvm\n",
		"etc/machine-id":       "0f4b2c1e8d7a4c5e9b3a6d2f1e0c9b8a\n",
		"etc/fstab":            "UUID=" + r.uuid + " / ext4 errors=remount-ro 0 1\n",
		// GRUB boots the saved entry (the old kernel until the agent makes
		// the target the default), at once, on the serial console; the
		// kernel command line keeps the bpf LSM the mitigations need.
		"etc/default/grub.d/kroll.cfg": `# Written by test/systemdvm.
GRUB_DEFAULT=saved
GRUB_TIMEOUT=0
GRUB_TIMEOUT_STYLE=menu
GRUB_TERMINAL=serial
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="console=ttyS0,115200 net.ifnames=0 panic=-1 loglevel=6 lsm=` + vm.DefaultLSM + `"
GRUB_DISABLE_RECOVERY=true
GRUB_DISABLE_OS_PROBER=true
`,
		// Initramfs images generated inside the VM (the target's, by
		// dpkg) hold the modules this machine needs (MODULES=dep): the
		// image built in the chroot on the host had to take most of them
		// (rootfs.sh), and that takes minutes under TCG.
		"etc/initramfs-tools/conf.d/kroll.conf": "MODULES=dep\n",
		// qemu user networking: the host's loopback is 10.0.2.2.
		"etc/systemd/network/10-eth0.network": "[Match]\nName=eth0\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\n",
		// The anycast table belongs to the BGP daemon, not to networkd.
		"etc/systemd/networkd.conf.d/kroll.conf": "[Network]\nManageForeignRoutes=no\nManageForeignRoutingPolicyRules=no\n",
		// The journal (the agent's log among it) on the serial console.
		"etc/systemd/journald.conf.d/console.conf": "[Journal]\nForwardToConsole=yes\nTTYPath=/dev/ttyS0\nMaxLevelConsole=info\n",
		// The anycast route a BGP daemon would announce, put back at every
		// boot (the agent withdraws it again while the host is not
		// healthy). The dummy interface is a module of the running kernel.
		"etc/systemd/system/kroll-anycast.service": fmt.Sprintf(`[Unit]
Description=anycast route of the test (dummy0, table %[1]d)
After=systemd-networkd.service
Before=kroll-agent.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/sbin/ip link add dummy0 type dummy
ExecStart=/sbin/ip addr add %[2]s/32 dev dummy0
ExecStart=/sbin/ip link set dummy0 up
ExecStart=/sbin/ip route add %[2]s/32 dev dummy0 table %[1]d
[Install]
WantedBy=multi-user.target
`, anycastTable, anycastAddr),
		// Prints systemd's state once the boot finished, whether a module
		// of the running kernel loads, the kernel package's dpkg status and
		// its initrd (Type=exec: the job is done when the shell runs, so
		// it does not hold the boot).
		"etc/systemd/system/kroll-report.service": `[Unit]
Description=report the system state on the console
After=multi-user.target
[Service]
Type=exec
StandardOutput=tty
TTYPath=/dev/ttyS0
ExecStart=/usr/local/sbin/kroll-report
[Install]
WantedBy=multi-user.target
`,
		"usr/local/sbin/kroll-report": `#!/bin/sh
r=$(uname -r)
s=$(systemctl is-system-running --wait)
echo "` + stateMarker + `$r $s"
out=$(modprobe -v af_alg 2>&1)
if grep -qw '^af_alg' /proc/modules; then m=ok; else m=failed; fi
echo "` + modprobeMarker + `$r af_alg $m $out"
echo "` + dpkgMarker + `$r $(dpkg-query -W -f='${Status}' "linux-image-$r" 2>&1)"
if [ -s "/boot/initrd.img-$r" ]; then echo "` + initrdMarker + `$r present"; else echo "` + initrdMarker + `$r missing"; fi
systemctl --failed --no-legend --plain | sed "s/^/` + failedMarker + `/"
`,
		// Prints the running kernel, the anycast routes and GRUB's
		// environment whenever they change.
		"etc/systemd/system/kroll-watch.service": `[Unit]
Description=watch the anycast routes and GRUB's environment
After=kroll-anycast.service
[Service]
Type=exec
StandardOutput=tty
TTYPath=/dev/ttyS0
ExecStart=/usr/local/sbin/kroll-watch
[Install]
WantedBy=multi-user.target
`,
		"usr/local/sbin/kroll-watch": fmt.Sprintf(`#!/bin/sh
prev=
while :; do
	cur="$(uname -r) routes=$(ip -o route show table %d | wc -l) env=$(grub-editenv /boot/grub/grubenv list 2>&1 | paste -sd'|')"
	if [ "$cur" != "$prev" ]; then echo "%s$cur"; prev=$cur; fi
	sleep 2
done
`, anycastTable, watchMarker),
	}
	for rel, content := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(rel, "usr/local/sbin/") {
			mode = 0o755
		}
		writeFile(t, filepath.Join(root, rel), []byte(content), mode)
	}
	links := map[string]string{
		"etc/systemd/system/multi-user.target.wants/kroll-report.service":     "/etc/systemd/system/kroll-report.service",
		"etc/systemd/system/multi-user.target.wants/kroll-watch.service":      "/etc/systemd/system/kroll-watch.service",
		"etc/systemd/system/multi-user.target.wants/kroll-anycast.service":    "/etc/systemd/system/kroll-anycast.service",
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

// agentTOML is the agent's configuration for the scenario.
func (r *rig) agentTOML() string {
	var b strings.Builder
	fmt.Fprintf(&b, `# Written by test/systemdvm.
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
[anycast]
table = %d
prefixes = ["%s/32"]
[drain]
deadline = "5s"
poll = "500ms"
[boot]
mode = %q
`, hostID, dc, vm.HostAddr, r.coord.Port, anycastTable, anycastAddr, r.cfg.bootMode)
	if r.cfg.loader != "" {
		fmt.Fprintf(&b, "loader = %q\n", r.cfg.loader)
	}
	if r.cfg.install != "" {
		fmt.Fprintf(&b, "[install]\nmode = %q\n", r.cfg.install)
	}
	b.WriteString(`[timing]
retry_interval = "2s"
heartbeat_interval = "2s"
renew_interval = "10s"
`)
	if r.cfg.failOnTarget {
		fmt.Fprintf(&b, `[[health.commands]]
name = "not-on-%[1]s"
command = ["/bin/sh", "-c", "test \"$(uname -r)\" != %[1]s"]
timeout = "10s"
`, r.target.Release)
	}
	return b.String()
}

// startQEMU boots the disk image under TCG through SeaBIOS and the GRUB on
// the disk: no -kernel, -initrd or -append. With reboots, a reboot of the
// guest restarts it through the firmware (else qemu ends). qmp is the path
// of the QMP socket (powerOff). The returned channel is closed when qemu
// ended; qemu is killed when ctx ends or the test ends.
func startQEMU(t *testing.T, ctx context.Context, con *console, disk, qmp string, reboots bool) <-chan struct{} {
	t.Helper()
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		vm.Unavailable(t, err)
	}
	// SeaBIOS's serial console (fw_cfg etc/sercon-port, the port as a
	// little-endian integer): the BIOS and GRUB's first messages on ttyS0.
	sercon := filepath.Join(filepath.Dir(qmp), "sercon-port")
	writeFile(t, sercon, []byte{0xf8, 0x03}, 0o644)
	args := []string{"-accel", "tcg", "-nodefaults", "-display", "none",
		"-m", "1024", "-smp", "1", "-cpu", "max",
		"-serial", "stdio", "-monitor", "none", "-qmp", "unix:" + qmp + ",server=on,wait=off",
		"-fw_cfg", "name=etc/sercon-port,file=" + sercon,
		"-drive", "file=" + disk + ",format=raw,if=none,id=root", "-device", "virtio-blk-pci,drive=root,bootindex=0",
		"-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,romfile="}
	if !reboots {
		args = append(args, "-no-reboot")
	}
	cmd := exec.CommandContext(ctx, qemu, args...)
	// qemu ends with the test process, also when that is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
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
			con.add(fmt.Sprintf("(qemu exited: %v %s)", err, bytes.TrimSpace(stderr.Bytes())))
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

// powerOff presses the guest's ACPI power button (QMP system_powerdown) and
// waits until qemu ended: systemd shuts down cleanly, so what the guest
// wrote is on the disk image.
func (r *rig) powerOff(ctx context.Context) {
	t := r.t
	t.Helper()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", r.qmp)
	if err != nil {
		t.Fatalf("qmp: %v", err)
	}
	defer c.Close()
	dec := json.NewDecoder(c)
	var greeting map[string]any
	if err := dec.Decode(&greeting); err != nil {
		t.Fatalf("qmp greeting: %v", err)
	}
	for _, command := range []string{"qmp_capabilities", "system_powerdown"} {
		if _, err := fmt.Fprintf(c, `{"execute":%q}`+"\n", command); err != nil {
			t.Fatalf("qmp %s: %v", command, err)
		}
		for {
			var reply map[string]json.RawMessage
			if err := dec.Decode(&reply); err != nil {
				t.Fatalf("qmp %s: %v", command, err)
			}
			if e, ok := reply["error"]; ok {
				t.Fatalf("qmp %s: %s", command, e)
			}
			if _, ok := reply["return"]; ok {
				break
			}
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	select {
	case <-r.qemuDone:
	case <-wctx.Done():
		t.Fatalf("the guest did not power off after the ACPI power button: %v", wctx.Err())
	}
	if len(r.con.grep("reboot: Power down")) == 0 {
		t.Fatalf("qemu ended without a clean power down")
	}
}

// waitHost polls the coordinator's view of the host until ok holds; it
// fails the test when qemu ends or ctx ends first, and also when the host
// is failed or unhealthy unless failOK.
func (r *rig) waitHost(ctx context.Context, what string, failOK bool, ok func(*wire.Host) bool) *wire.Host {
	t := r.t
	t.Helper()
	var last *wire.Host
	for {
		h, err := r.coord.Client.Host(ctx, hostID)
		if err == nil {
			last = h
			if ok(h) {
				return h
			}
			if !failOK && (h.Phase == wire.PhaseFailed || h.Unhealthy) {
				t.Fatalf("waiting until %s: the host failed: phase %s, unhealthy %v, kernel %s", what, h.Phase, h.Unhealthy, h.Kernel)
			}
		}
		select {
		case <-r.qemuDone:
			t.Fatalf("waiting until %s: qemu ended; last view of the host: %+v", what, last)
		case <-ctx.Done():
			t.Fatalf("waiting until %s: %v; last view of the host: %+v", what, ctx.Err(), last)
		case <-time.After(2 * time.Second):
		}
	}
}

// waitConsole waits for a console line containing s.
func (r *rig) waitConsole(ctx context.Context, s string) {
	r.t.Helper()
	r.waitConsoleLine(ctx, fmt.Sprintf("a line with %q", s), func(l string) bool { return strings.Contains(l, s) })
}

// waitConsoleLine waits for a console line for which ok holds and returns
// it.
func (r *rig) waitConsoleLine(ctx context.Context, what string, ok func(string) bool) string {
	t := r.t
	t.Helper()
	seen := 0
	for {
		r.con.mu.Lock()
		lines := r.con.lines[seen:]
		seen = len(r.con.lines)
		r.con.mu.Unlock()
		for _, l := range lines {
			if ok(l) {
				return l
			}
		}
		select {
		case <-r.qemuDone:
			if seen == len(r.con.grep("")) {
				t.Fatalf("qemu ended before the console showed %s", what)
			}
		case <-ctx.Done():
			t.Fatalf("the console did not show %s: %v", what, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// waitWatch waits for a kroll-watch line for which ok holds.
func (r *rig) waitWatch(ctx context.Context, what string, ok func(watchLine) bool) watchLine {
	r.t.Helper()
	l := r.waitConsoleLine(ctx, what, func(l string) bool {
		w, valid := parseWatch(l)
		return valid && ok(w)
	})
	w, _ := parseWatch(l)
	r.t.Logf("console: %s", strings.TrimSpace(l[strings.Index(l, watchMarker):]))
	return w
}

// count checks the number of console lines containing s.
func (r *rig) count(what, s string, want int) {
	r.t.Helper()
	if got := r.con.grep(s); len(got) != want {
		r.t.Errorf("%s: %d console lines with %q, want %d: %q", what, len(got), s, want, got)
	}
}

// checkReport checks what kroll-report printed on the boot of release:
// systemd running, af_alg loaded from release's modules, the kernel package
// installed by dpkg with its initrd.
func (r *rig) checkReport(ctx context.Context, release string) {
	t := r.t
	t.Helper()
	r.waitConsole(ctx, initrdMarker+release+" ")
	for _, want := range []string{
		stateMarker + release + " running",
		modprobeMarker + release + " af_alg ok",
		dpkgMarker + release + " install ok installed",
		initrdMarker + release + " present",
	} {
		if len(r.con.grep(want)) == 0 {
			t.Errorf("no console line with %q; the report of %s: %q", want, release, r.con.grep(" "+release+" "))
		}
	}
	for _, m := range []string{stateMarker, modprobeMarker, dpkgMarker, initrdMarker} {
		for _, l := range r.con.grep(m + release) {
			t.Logf("console: %s", strings.TrimSpace(l[strings.Index(l, m):]))
		}
	}
	if f := r.con.grep(failedMarker); len(f) > 0 {
		t.Errorf("failed units: %q", f)
	}
}

// events logs the coordinator's events for the host and checks that each
// of want is among them.
func (r *rig) events(ctx context.Context, want ...string) {
	t := r.t
	t.Helper()
	evs, err := r.coord.Client.Events(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range evs {
		if e.Host == hostID || e.Host == "" {
			seen[e.Type] = true
			at := ""
			if !r.targeted.IsZero() {
				at = fmt.Sprintf("%+.0fs ", e.Time.Sub(r.targeted).Seconds())
			}
			t.Logf("event %s%s: %s", at, e.Type, e.Message)
		}
	}
	for _, typ := range want {
		if !seen[typ] {
			t.Errorf("no %s event", typ)
		}
	}
}

// timeline records the host's phases as the coordinator sees them, from
// the moment the target was set.
type timeline struct {
	mu      sync.Mutex
	start   time.Time
	entries []phaseEntry
}

type phaseEntry struct {
	at            time.Duration
	phase, kernel string
}

// recordPhases polls the coordinator's view of the host every second until
// the test ends.
func recordPhases(t *testing.T, ctx context.Context, coord *testcoord.Coordinator, start time.Time) *timeline {
	tl := &timeline{start: start}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if h, err := coord.Client.Host(ctx, hostID); err == nil {
				tl.mu.Lock()
				if n := len(tl.entries); n == 0 || tl.entries[n-1].phase != h.Phase || tl.entries[n-1].kernel != h.Kernel {
					tl.entries = append(tl.entries, phaseEntry{at: time.Since(start), phase: h.Phase, kernel: h.Kernel})
				}
				tl.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return tl
}

// log writes the host cycle per phase (the time from each phase to the
// next, as sampled every second) and the boots seen on the console into the
// test log, for docs/benchmarks.md.
func (r *rig) logTimeline() {
	t := r.t
	t.Helper()
	tl := r.timeline
	tl.mu.Lock()
	entries := append([]phaseEntry(nil), tl.entries...)
	tl.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "host cycle of %s (%s, loader %q, TCG), from setting the target; phases sampled every 1s:\n", t.Name(), r.cfg.bootMode, r.cfg.loader)
	for i, e := range entries {
		dur := "(last)"
		if i+1 < len(entries) {
			dur = (entries[i+1].at - e.at).Round(time.Second).String()
		}
		fmt.Fprintf(&b, "  +%-6s %-14s %-8s kernel %s\n", e.at.Round(time.Second), e.phase, dur, e.kernel)
	}
	for _, k := range []string{r.target.Release, r.old.Release} {
		for _, s := range []string{grubMarker + k, "Linux version " + k, stateMarker + k + " running"} {
			if at, ok := r.con.first(s, r.targeted); ok {
				fmt.Fprintf(&b, "  console +%s: %s\n", at.Sub(r.targeted).Round(time.Second), s)
			}
		}
	}
	b.WriteString("the agent's log (journal on the console) from setting the target:\n")
	for _, l := range r.con.agentLog(r.targeted) {
		fmt.Fprintf(&b, "  +%-6s %s\n", l.at.Sub(r.targeted).Round(time.Second), l.text)
	}
	t.Log(b.String())
}

// agentLine is one line of the agent's JSON log, as the console showed it.
type agentLine struct {
	at   time.Time
	text string
}

// agentLog returns the agent's log lines that arrived on the console after
// after, each as its message and fields (without time, level, host and
// datacenter).
func (c *console) agentLog(after time.Time) []agentLine {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []agentLine
	for i, l := range c.lines {
		j := strings.Index(l, "kroll-agent[")
		if j < 0 || !c.at[i].After(after) {
			continue
		}
		k := strings.Index(l[j:], "{")
		if k < 0 {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(l[j+k:]), &rec); err != nil {
			out = append(out, agentLine{c.at[i], l[j+k:]})
			continue
		}
		for _, drop := range []string{"time", "level", "host", "datacenter"} {
			delete(rec, drop)
		}
		msg, _ := rec["msg"].(string)
		delete(rec, "msg")
		keys := make([]string, 0, len(rec))
		for key := range rec {
			keys = append(keys, key)
		}
		sort.Strings(keys)
		text := msg
		for _, key := range keys {
			text += fmt.Sprintf(" %s=%v", key, rec[key])
		}
		if len(text) > 240 {
			text = text[:240] + "…"
		}
		out = append(out, agentLine{c.at[i], text})
	}
	return out
}

// agentDeb builds the agent binaries and the kroll-agent .deb with `make
// packages-only` and returns the .deb's path. Builds are serialized (also
// across processes): make stages the packages in the repository's
// dist/.stage.
func agentDeb(t *testing.T, ctx context.Context, work string) string {
	t.Helper()
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cache, err := cacheDir()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	unlock, err := vm.LockFile(ctx, filepath.Join(cache, ".packages.lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
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

func policyState(h *wire.Host, id string) string {
	for _, p := range h.Policies {
		if p.ID == id {
			return string(p.State)
		}
	}
	return ""
}

func hasEvent(ctx context.Context, coord *testcoord.Coordinator, typ string) bool {
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
