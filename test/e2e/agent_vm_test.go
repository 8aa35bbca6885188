// Package e2e holds cross-component end-to-end scenarios: a real
// coordinator and artifact server on the host, real agents in qemu VMs.
package e2e

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/feed"
	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/internal/aptrepo"
	"github.com/kroll-dev/kroll/internal/testcoord"
	"github.com/kroll-dev/kroll/internal/testpki"
	"github.com/kroll-dev/kroll/pkg/policy"
	"github.com/kroll-dev/kroll/pkg/release"
	"github.com/kroll-dev/kroll/pkg/signing"
	"github.com/kroll-dev/kroll/pkg/wire"
	"github.com/kroll-dev/kroll/test/vm"
	"github.com/kroll-dev/kroll/test/vm/guest"
)

const (
	releaseID = "kroll-e2e.1"
	hostID    = "vm1"
	dc        = "fra1"
)

// guestScript runs in every boot: it announces the anycast prefix the way
// the host's network configuration would (a dummy interface and a route in
// the BGP-exported table 100), runs the agent, and waits until the agent
// has finished with the release (or the VM is kexeced under it).
const guestScript = `
ip link add anycast0 type dummy || fail anycast0
ip link set anycast0 up
ip addr add 192.0.2.1/32 dev anycast0
ip route add 192.0.2.0/24 dev anycast0 table 100 || fail route
report() { echo; echo "` + guest.Marker + `$1 \"$2\""; }
report boot "$(uname -r)"
report routes_at_boot "$(ip route show table 100 | tr '\n' ';')"
if [ ! -e /data/kroll/journal.json ]; then
	# First boot: an operator applied a stopgap mitigation on this host.
	/kroll/kroll-agent mitigations apply --trusted-key /kroll/policy.pub --state-dir /data/kroll/mitigations /kroll/policy.yaml /kroll/policy2.yaml || fail mitigation
fi
/kroll/kroll-agent run --config /kroll/agent.toml >/dev/console 2>&1 &
agent=$!
i=0
while [ $i -lt 900 ]; do
	case "$(/kroll/kroll-agent status --config /kroll/agent.toml --json 2>/dev/null)" in
	*'"` + releaseID + `": "'*) break;;
	esac
	sleep 1
	i=$((i+1))
done
report agent_rss_kb "$(awk '/^VmRSS/{print $2}' /proc/$agent/status)"
report mitigations "$(/kroll/kroll-agent mitigations list --trusted-key /kroll/policy.pub --state-dir /data/kroll/mitigations | tr '\t\n' ' ;')"
kill -TERM $agent
wait $agent
report final_kernel "$(uname -r)"
report final_routes "$(ip route show table 100 | tr '\n' ';')"
/kroll/kroll-agent status --config /kroll/agent.toml
`

// scenario is one end-to-end run.
type scenario struct {
	name string
	// healthCommand is a [[health.commands]] entry, "" for none.
	healthCommand string
	// feed: nobody adds the release; the real .deb is published to an
	// apt repository the coordinator's feed polls, and the train of line
	// 6.1 stages it on the VM's datacenter (tier staging).
	feed bool
}

type outcome struct {
	res     *vm.Result
	coord   *testcoord.Coordinator
	old     *vm.Kernel
	new     *vm.Kernel
	elapsed time.Duration
}

func runScenario(t testing.TB, sc scenario) outcome {
	old := vm.TestOldestKernel(t, vm.Line61)
	newK := vm.TestKernel(t, vm.Line61)
	if old.Release == newK.Release {
		t.Fatalf("need two 6.1 kernels, the archive offers only %s", old.Release)
	}
	agentBin := vm.TestProgram(t, "github.com/kroll-dev/kroll/agent/cmd/kroll-agent")

	dir := t.TempDir()
	ca := testpki.NewCA(t)
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{42}, ed25519.SeedSize))
	pubPEM, err := signing.MarshalPublicKey(priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "release.pub"), pubPEM)
	certFile, keyFile, caFile := ca.WriteFiles(t, dir, ca.Issue(t, "agent", hostID))
	writePolicies(t, dir)

	// The guest reaches the host's loopback as 10.0.2.2.
	opts := testcoord.Options{CA: ca, IPs: []string{vm.HostAddr}, ReleaseKeys: []ed25519.PublicKey{priv.Public().(ed25519.PublicKey)}}
	if sc.feed {
		opts.Feeds = []feed.Config{publishFeed(t, priv, newK)}
	}
	coord := testcoord.Start(t, opts)
	ctx := t.Context()
	one := 1
	if sc.feed {
		tier := fsm.TierStaging
		if _, err := coord.Client.SetDatacenter(ctx, dc, wire.DatacenterUpdate{SlotLimit: &one, Tier: &tier}); err != nil {
			t.Fatal(err)
		}
		// The departure is days away: only staging moves.
		dep := time.Now().UTC().Add(72 * time.Hour)
		if _, err := coord.Client.SetTrain(ctx, "6.1", wire.TrainSetRequest{Staging: []string{dc}, StagingSoakSeconds: 3600, ControlSoakSeconds: 3600,
			EdgeCycleSeconds: 7 * 24 * 3600, Departure: dep.Weekday().String()[:3] + " 09:00 UTC"}); err != nil {
			t.Fatal(err)
		}
	} else {
		if _, err := coord.Client.SetDatacenter(ctx, dc, wire.DatacenterUpdate{SlotLimit: &one}); err != nil {
			t.Fatal(err)
		}
		if _, err := coord.Client.AddRelease(ctx, vm.DebRelease(t, priv, releaseID, "6.1", newK)); err != nil {
			t.Fatal(err)
		}
		target := releaseID
		if _, err := coord.Client.SetDatacenter(ctx, dc, wire.DatacenterUpdate{TargetRelease: &target}); err != nil {
			t.Fatal(err)
		}
	}

	cfg := fmt.Sprintf(`host_id = %q
datacenter = %q
kernel_line = "6.1"
state_dir = "/data/kroll"
[coordinator]
urls = ["https://%s:%s"]
ca_file = "/kroll/pki/ca.pem"
cert_file = "/kroll/pki/cert.pem"
key_file = "/kroll/pki/key.pem"
[trust]
release_keys = ["/kroll/release.pub"]
policy_keys = ["/kroll/policy.pub"]
[anycast]
table = 100
[drain]
deadline = "5s"
poll = "500ms"
[boot]
mode = "kexec"
# qemu -kernel: the busybox guest has no boot loader to manage.
loader = "none"
boot_dir = "/data/boot"
# The busybox guest has no dpkg or depmod: the harness installs the
# target's modules and initrd; the agent only stages.
[install]
mode = "off"
[timing]
retry_interval = "2s"
heartbeat_interval = "2s"
renew_interval = "10s"
[gossip]
# The VM is alone in its pool (qemu user networking isolates guests), but
# the agent runs the pool as it would in a datacenter: its memory counts.
bind = "0.0.0.0:7946"
key_files = ["/kroll/gossip.key"]
%s`, hostID, dc, vm.HostAddr, coord.Port, sc.healthCommand)
	writeFile(t, filepath.Join(dir, "agent.toml"), []byte(cfg))
	writeFile(t, filepath.Join(dir, "gossip.key"), []byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))+"\n"))

	var console bytes.Buffer
	start := time.Now()
	res, err := vm.Run(ctx, vm.Config{
		Kernel: old, Extra: []*vm.Kernel{newK},
		Script: guestScript, Modules: []string{"dummy", "tcp_diag"}, Network: true,
		Files: map[string]string{
			"kroll/kroll-agent": agentBin, "kroll/agent.toml": filepath.Join(dir, "agent.toml"),
			"kroll/release.pub": filepath.Join(dir, "release.pub"),
			"kroll/policy.pub":  filepath.Join(dir, "policy.pub"), "kroll/policy.yaml": filepath.Join(dir, "policy.yaml"),
			"kroll/policy.yaml.sig": filepath.Join(dir, "policy.yaml.sig"), "kroll/policy2.yaml": filepath.Join(dir, "policy2.yaml"),
			"kroll/policy2.yaml.sig": filepath.Join(dir, "policy2.yaml.sig"), "kroll/gossip.key": filepath.Join(dir, "gossip.key"),
			"kroll/pki/ca.pem": caFile, "kroll/pki/cert.pem": certFile, "kroll/pki/key.pem": keyFile,
		},
		DiskMB: 384, MemoryMB: 1024, Timeout: 12 * time.Minute, Console: &console,
	})
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, tail(console.String(), 120))
	}
	if res.ExitCode != 0 {
		t.Fatalf("guest script exited %d; console:\n%s", res.ExitCode, tail(console.String(), 120))
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("console:\n%s", tail(console.String(), 200))
		}
	})
	return outcome{res: res, coord: coord, old: old, new: newK, elapsed: elapsed}
}

// e2ePolicies are stopgaps the kernels under test do not fix: AF_ALG
// sockets denied to everyone, user namespace creation audited.
var e2ePolicies = map[string]string{"policy.yaml": `id: e2e-alg
version: 1
kind: socket-family
mode: enforce
params:
  family: AF_ALG
  operations: [create, bind]
applies_to:
  fixed_in: ["6.1.999"]
expires: 2099-12-31T00:00:00Z
`, "policy2.yaml": `id: e2e-userns
version: 3
kind: userns-create
mode: audit
params:
  allow_exe: [/bin/busybox]
applies_to:
  fixed_in: ["6.1.999"]
expires: 2099-12-31T00:00:00Z
`}

// writePolicies writes the policies, their signatures and policy.pub into
// dir.
func writePolicies(t testing.TB, dir string) {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{43}, ed25519.SeedSize))
	for name, doc := range e2ePolicies {
		p, err := policy.Decode([]byte(doc), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		sig, err := policy.Sign(priv, p)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, name), []byte(doc))
		writeFile(t, filepath.Join(dir, name+".sig"), sig.Marshal())
	}
	pub, err := signing.MarshalPublicKey(priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "policy.pub"), pub)
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// reports returns every value of a string report, in console order.
func reports(res *vm.Result, key string) []string {
	var out []string
	for _, r := range res.Reports {
		if r.Key == key {
			var s string
			if json.Unmarshal(r.Value, &s) == nil {
				out = append(out, s)
			}
		}
	}
	return out
}

// phaseLine matches the agent's phase log line (text format: the serial
// console is a terminal).
var phaseLine = regexp.MustCompile(`time=(\S+) level=INFO msg=phase .*from=(\S+) to=(\S+)`)

// phaseTimes extracts the agent's phase transitions from its log on the
// console and returns how long each phase lasted, in order.
func phaseTimes(console []string) []string {
	var out []string
	for _, p := range phaseDurations(console) {
		out = append(out, fmt.Sprintf("%s %s", p.phase, p.d.Round(100*time.Millisecond)))
	}
	return out
}

type phaseDuration struct {
	phase string
	d     time.Duration
}

func phaseDurations(console []string) []phaseDuration {
	type tr struct {
		Time     time.Time
		From, To string
	}
	var trs []tr
	for _, l := range console {
		m := phaseLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, m[1])
		if err == nil {
			trs = append(trs, tr{ts, m[2], m[3]})
		}
	}
	var out []phaseDuration
	for i := 1; i < len(trs); i++ {
		out = append(out, phaseDuration{trs[i-1].To, trs[i].Time.Sub(trs[i-1].Time)})
	}
	return out
}

// TestAgentKexecUpgrade: an agent in a VM on the oldest 6.1 kernel gets a
// signed release of the newest 6.1 kernel (the real Debian .deb) from a
// coordinator on the host, stages it, takes the slot, withdraws its anycast
// route, kexecs, verifies the new kernel and reports healthy; the
// coordinator then shows the host on the new kernel with no slot held.
func TestAgentKexecUpgrade(t *testing.T) {
	o := runScenario(t, scenario{name: "upgrade"})
	boots := reports(o.res, "boot")
	t.Logf("uname -r before: %s, after: %s (boots: %v, %d in %s)", o.old.Release, strings.Join(reports(o.res, "final_kernel"), ""), boots, o.res.Boots, o.elapsed.Round(time.Second))
	t.Logf("time per phase (agent log): %s", strings.Join(phaseTimes(o.res.Console), ", "))
	if len(boots) != 2 || boots[0] != o.old.Release || boots[1] != o.new.Release || o.res.Boots != 2 {
		t.Fatalf("boots %v (%d), want [%s %s]", boots, o.res.Boots, o.old.Release, o.new.Release)
	}
	if k := reports(o.res, "final_kernel"); len(k) != 1 || k[0] != o.new.Release {
		t.Fatalf("final kernel %v", k)
	}
	// The route announced at boot is withdrawn until health, then restored.
	if r := reports(o.res, "final_routes"); len(r) != 1 || !strings.Contains(r[0], "192.0.2.0/24 dev anycast0") {
		t.Fatalf("routes after the upgrade: %v", r)
	}
	// The mitigation applied before the upgrade is in force on the new kernel.
	if m := reports(o.res, "mitigations"); len(m) != 1 || !strings.Contains(m[0], "e2e-alg v1 socket-family enforcing") ||
		!strings.Contains(m[0], "e2e-userns v3 userns-create auditing") {
		t.Fatalf("mitigations after the upgrade: %v", m)
	}
	h, err := o.coord.Client.Host(t.Context(), hostID)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Policies) != 2 || h.Policies[0].ID != "e2e-alg" || h.Policies[0].State != "enforcing" || h.Policies[1].State != "auditing" {
		t.Errorf("coordinator's view of the policies: %+v", h.Policies)
	}
	if h.Kernel != o.new.Release || h.Slot != nil || h.Unhealthy {
		t.Fatalf("coordinator's view of %s: kernel %s slot %+v unhealthy %v", hostID, h.Kernel, h.Slot, h.Unhealthy)
	}
	checkEvents(t, o.coord, "slot_granted", "host_healthy", "slot_released")
}

// TestAgentRollback: the new kernel boots but a health check fails on it;
// the agent reports unhealthy, kexecs back into the previous kernel, and
// ends failed with its anycast route withdrawn and the slot released.
func TestAgentRollback(t *testing.T) {
	o := runScenario(t, scenario{name: "rollback", healthCommand: `
[[health.commands]]
name = "service"
command = ["/bin/sh", "-c", "test \"$(uname -r)\" != \"$(ls /data/kroll/releases/` + releaseID + `/root/boot | sed -n 's/^vmlinuz-//p')\""]
timeout = "10s"
`})
	boots := reports(o.res, "boot")
	t.Logf("boots: %v; time per phase: %s", boots, strings.Join(phaseTimes(o.res.Console), ", "))
	if len(boots) != 3 || boots[0] != o.old.Release || boots[1] != o.new.Release || boots[2] != o.old.Release {
		t.Fatalf("boots %v, want old → new → old", boots)
	}
	if r := reports(o.res, "final_routes"); len(r) != 1 || strings.Contains(r[0], "192.0.2.0/24") {
		t.Fatalf("a failed host announces its anycast route: %v", r)
	}
	h, err := o.coord.Client.Host(t.Context(), hostID)
	if err != nil {
		t.Fatal(err)
	}
	if h.Kernel != o.old.Release || h.Slot != nil || !h.Unhealthy || h.Phase != wire.PhaseFailed {
		t.Fatalf("coordinator's view: kernel %s slot %+v unhealthy %v phase %s", h.Kernel, h.Slot, h.Unhealthy, h.Phase)
	}
	checkEvents(t, o.coord, "slot_granted", "host_unhealthy", "slot_released")
}

// publishFeed publishes the real kernel package k to an apt repository
// (the .deb copied into the pool, dpkg-scanpackages, the manifest signed
// by priv next to the .deb) served on the host's loopback, which the
// guest reaches as vm.HostAddr, and returns the feed of it.
func publishFeed(t testing.TB, priv ed25519.PrivateKey, k *vm.Kernel) feed.Config {
	t.Helper()
	repo, err := aptrepo.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	deb, err := repo.AddDeb(t.Context(), k.Deb)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(repo.Dir)), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	m := release.Manifest{ID: releaseID, Line: "6.1", KernelVersion: k.Release, UpstreamVersion: strings.SplitN(k.PackageVersion, "-", 2)[0],
		Kind: release.KindDeb, Artifacts: []release.Artifact{deb.Artifact("http://" + vm.HostAddr + ":" + port)},
		Created: time.Now().UTC().Truncate(time.Second)}
	if err := repo.Publish(deb, m, priv); err != nil {
		t.Fatal(err)
	}
	if err := repo.Index(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	return feed.Config{Name: "weekly", Kind: feed.KindApt, URL: "http://" + ln.Addr().String() + "/", Suite: aptrepo.Suite,
		Component: aptrepo.Component, Arch: aptrepo.Arch, Package: "linux-image-6.1.*", Line: "6.1", Interval: time.Second}
}

// TestAgentTrainFromFeed: nobody adds the release. The newest 6.1 kernel
// package appears in an apt repository; the coordinator's feed makes it a
// candidate, the train of line 6.1 stages it on the VM's staging
// datacenter, and the agent on the oldest 6.1 kernel stages it, kexecs
// into it and ends healthy on it.
func TestAgentTrainFromFeed(t *testing.T) {
	o := runScenario(t, scenario{name: "train", feed: true})
	boots := reports(o.res, "boot")
	t.Logf("boots: %v; time per phase: %s", boots, strings.Join(phaseTimes(o.res.Console), ", "))
	if len(boots) != 2 || boots[0] != o.old.Release || boots[1] != o.new.Release {
		t.Fatalf("boots %v, want [%s %s]", boots, o.old.Release, o.new.Release)
	}
	ctx := t.Context()
	h, err := o.coord.Client.Host(ctx, hostID)
	if err != nil {
		t.Fatal(err)
	}
	if h.Kernel != o.new.Release || h.Slot != nil || h.Unhealthy || h.Phase != wire.PhaseIdle {
		t.Fatalf("coordinator's view of %s: kernel %s phase %s slot %+v unhealthy %v", hostID, h.Kernel, h.Phase, h.Slot, h.Unhealthy)
	}
	rels, err := o.coord.Client.Releases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rels) != 1 || rels[0].ID != releaseID || rels[0].Source != "feed:weekly" ||
		(rels[0].State != fsm.ReleaseStaging && rels[0].State != fsm.ReleaseValidated) {
		t.Fatalf("releases %+v: want %s from feed:weekly, staging or validated", rels, releaseID)
	}
	checkEvents(t, o.coord, "release_candidate", "train_step", "slot_granted", "host_healthy", "slot_released")
}

func checkEvents(t *testing.T, c *testcoord.Coordinator, types ...string) {
	t.Helper()
	evs, err := c.Client.Events(t.Context(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var all []string
	for _, e := range evs {
		seen[e.Type] = true
		all = append(all, e.Type+": "+e.Message)
	}
	for _, typ := range types {
		if !seen[typ] {
			t.Errorf("no %s event; events:\n%s", typ, strings.Join(all, "\n"))
		}
	}
}

// BenchmarkAgentUpgrade runs the kexec upgrade scenario and reports the
// agent's resident memory at the end (idle after the upgrade, two bpf-lsm
// policies loaded, its gossip pool running, heartbeating) and the time
// spent per phase.
//
//	go test -run '^$' -bench AgentUpgrade -benchtime 1x ./test/e2e/
func BenchmarkAgentUpgrade(b *testing.B) {
	for range b.N {
		o := runScenario(b, scenario{name: "upgrade"})
		var kb float64
		if r := reports(o.res, "agent_rss_kb"); len(r) == 1 {
			fmt.Sscan(r[0], &kb)
		}
		if kb == 0 {
			b.Fatal("the guest reported no agent RSS")
		}
		b.ReportMetric(kb/1024, "MiB-rss")
		sums := map[string]time.Duration{}
		for _, p := range phaseDurations(o.res.Console) {
			sums[p.phase] += p.d
		}
		for _, ph := range []string{wire.PhaseStaging, wire.PhaseDraining, wire.PhaseRebooting, wire.PhaseVerifying} {
			b.ReportMetric(sums[ph].Seconds(), "s-"+ph)
		}
		b.ReportMetric(o.elapsed.Seconds(), "s-vm-total")
	}
}
