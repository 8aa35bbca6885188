package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/kroll-dev/kroll/internal/aptrepo"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/release"
	"github.com/kroll-dev/kroll/pkg/signing"
	"github.com/kroll-dev/kroll/pkg/wire"
	"github.com/kroll-dev/kroll/test/vm"
)

type options struct {
	sim   bool
	perDC int
	bin   string
	keep  bool
}

// demoDCs are the two datacenters of the demo.
var demoDCs = []string{"fra1", "ams1"}

// row is one host of the summary.
type row struct {
	host, dc, before, after, method string
	phases                          map[string]time.Duration
	boots                           int
}

type demo struct {
	o   options
	out io.Writer
	dir string

	mu    sync.Mutex
	procs []*exec.Cmd
	rows  []row

	urls     []string
	ca       *pki
	caFile   string
	opToken  string
	agentTok string
	ctl      *client.Client
	relKey   ed25519.PrivateKey
	polKey   ed25519.PrivateKey

	// sim are the simulated hosts (--sim).
	sim *simFleet
	// repo is the weekly-build apt repository the coordinators' feed
	// polls (--sim: the train section), served at repoURL.
	repo    *aptrepo.Repo
	repoURL string
}

func newDemo(o options, out io.Writer) *demo {
	return &demo{o: o, out: out}
}

func (d *demo) step(format string, args ...any) {
	fmt.Fprintf(d.out, "\n\033[1m== "+format+"\033[0m\n", args...)
}

// cleanup stops every process the demo started and removes its directory,
// unless the demo failed (or --keep): then the directory stays, with the
// logs of every process, and cleanup says where.
func (d *demo) cleanup(failed bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.procs {
		if c.Process != nil {
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
		}
	}
	for _, c := range d.procs {
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	d.procs = nil
	switch {
	case d.dir == "":
	case failed:
		fmt.Fprintf(d.out, "demo failed: logs kept in %s (remove it when done)\n", d.dir)
	case d.o.keep:
		fmt.Fprintf(d.out, "kept %s\n", d.dir)
	default:
		os.RemoveAll(d.dir)
	}
}

// start runs a background process in its own process group, logging to
// dir/name.log.
func (d *demo) start(name string, args ...string) error {
	logf, err := os.Create(filepath.Join(d.dir, name+".log"))
	if err != nil {
		return err
	}
	c := exec.Command(args[0], args[1:]...)
	c.Stdout, c.Stderr = logf, logf
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	d.mu.Lock()
	d.procs = append(d.procs, c)
	d.mu.Unlock()
	return nil
}

// krollctl runs krollctl against the quorum, showing the command.
func (d *demo) krollctl(ctx context.Context, args ...string) error {
	fmt.Fprintf(d.out, "$ krollctl %s\n", strings.Join(args, " "))
	c := exec.CommandContext(ctx, filepath.Join(d.o.bin, "krollctl"), append(args, "--tls-ca", d.caFile)...)
	c.Env = append(os.Environ(), "KROLL_COORDINATOR="+d.urls[0], "KROLL_TOKEN="+d.opToken)
	c.Stdout, c.Stderr = d.out, d.out
	return c.Run()
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func randomToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func writeFile(path string, data []byte) error { return os.WriteFile(path, data, 0o600) }

func (d *demo) run(ctx context.Context) error {
	if err := preflight(d.o.sim, systemLookers); err != nil {
		return err
	}
	for _, b := range []string{"kroll-coordinator", "krollctl", "kroll-agent"} {
		if _, err := os.Stat(filepath.Join(d.o.bin, b)); err != nil {
			return fmt.Errorf("%s: %w (run make build)", b, err)
		}
	}
	var err error
	if d.dir, err = os.MkdirTemp("", "kroll-demo-"); err != nil {
		return err
	}
	if err := d.startQuorum(ctx); err != nil {
		return err
	}
	var old, newK *vm.Kernel
	if !d.o.sim {
		d.step("kernels: the oldest and newest Debian 6.1 packages from the archive")
		if old, err = vm.OldestKernel(ctx, vm.Line61); err != nil {
			return err
		}
		if newK, err = vm.NewestKernel(ctx, vm.Line61); err != nil {
			return err
		}
		fmt.Fprintf(d.out, "hosts boot %s (%s); the release is %s (%s)\n", old.Release, old.PackageVersion, newK.Release, newK.PackageVersion)
	} else {
		old = &vm.Kernel{Release: "6.1.0-47-amd64", PackageVersion: "6.1.170-3"}
		newK = &vm.Kernel{Release: "6.1.0-56-amd64", PackageVersion: "6.1.192-2"}
	}
	rel, err := d.addRelease(ctx, newK)
	if err != nil {
		return err
	}
	d.step("agents in %s register", strings.Join(demoDCs, " and "))
	agents, err := d.startAgents(ctx, old, rel)
	if err != nil {
		return err
	}
	n := len(demoDCs) * d.o.perDC
	if d.o.sim {
		n = len(demoDCs) * d.o.perDC * 25
	}
	if err := d.waitHosts(ctx, n); err != nil {
		return err
	}
	if err := d.krollctl(ctx, "status"); err != nil {
		return err
	}
	if err := d.mitigate(ctx, n); err != nil {
		return err
	}
	// The demo fleet has no staging datacenter: the coordinator refuses a
	// rollout without a staging wave unless it is forced with a reason,
	// which the event log records.
	d.step("roll %s through: canary fra1, then ams1 (expedited: CVE-2026-31431; forced: no staging datacenter in the demo)", rel.ID)
	if err := d.krollctl(ctx, "rollout", "start", rel.ID, "--canary", "fra1", "--waves", "1", "--soak", "15s", "--expedite", "--force",
		"--reason", "CVE-2026-31431 fixed in "+rel.UpstreamVersion+"; the demo fleet has no staging datacenter"); err != nil {
		return err
	}
	watchCtx, stopWatch := context.WithTimeout(ctx, 8*time.Minute)
	defer stopWatch()
	if err := d.krollctl(watchCtx, "rollout", "watch", rel.ID, "--interval", "3s"); err != nil {
		return err
	}
	if d.o.sim {
		if err := d.train(ctx, rel, n); err != nil {
			return err
		}
	}
	if err := agents(); err != nil {
		return err
	}
	if err := d.krollctl(ctx, "policy", "list"); err != nil {
		return err
	}
	if err := d.krollctl(ctx, "events", "--limit", "12"); err != nil {
		return err
	}
	d.summary()
	return nil
}

// startQuorum starts three coordinator processes on loopback.
func (d *demo) startQuorum(ctx context.Context) error {
	d.step("a 3-node coordinator quorum on loopback")
	var err error
	d.relKey, err = signingKey(d.dir, "release")
	if err != nil {
		return err
	}
	d.polKey, err = signingKey(d.dir, "policy")
	if err != nil {
		return err
	}
	if d.ca, err = newPKI(); err != nil {
		return err
	}
	d.caFile = filepath.Join(d.dir, "ca.pem")
	if err := writeFile(d.caFile, d.ca.pem); err != nil {
		return err
	}
	d.opToken, d.agentTok = randomToken(), randomToken()
	peer := randomToken()
	if err := writeFile(filepath.Join(d.dir, "peer.token"), []byte(peer)); err != nil {
		return err
	}
	hash := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	feedConf := ""
	if d.o.sim {
		if feedConf, err = d.startRepo(); err != nil {
			return err
		}
	}
	conf := fmt.Sprintf(`[slots]
lease = "2m"
reboot_deadline = "10m"
alive_within = "1m"
heartbeat_interval = "2s"
[auth]
peer_token_file = %q
[[auth.tokens]]
name = "demo-operator"
role = "admin"
sha256 = %q
[[auth.tokens]]
name = "demo-agents"
role = "agent"
sha256 = %q
[releases]
trusted_keys = [%q]
[policies]
trusted_keys = [%q]
`, filepath.Join(d.dir, "peer.token"), hash(d.opToken), hash(d.agentTok), filepath.Join(d.dir, "release.pub"), filepath.Join(d.dir, "policy.pub")) + feedConf
	if err := writeFile(filepath.Join(d.dir, "coordinator.toml"), []byte(conf)); err != nil {
		return err
	}
	var peers []string
	raft, httpA := map[string]string{}, map[string]string{}
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("c%d", i)
		if raft[id], err = freePort(); err != nil {
			return err
		}
		if httpA[id], err = freePort(); err != nil {
			return err
		}
		peers = append(peers, id+"="+raft[id])
	}
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("c%d", i)
		// The nodes serve TLS (agents in the VMs reach them as 10.0.2.2)
		// and talk Raft over mutual TLS with kroll:peer:cN certificates.
		certFile, keyFile, _, err := d.ca.issue(d.dir, id, "peer", id, "127.0.0.1", vm.HostAddr)
		if err != nil {
			return err
		}
		if err := d.start(id, filepath.Join(d.o.bin, "kroll-coordinator"), "--node-id", id, "--data-dir", filepath.Join(d.dir, id),
			"--raft-addr", raft[id], "--http-addr", httpA[id], "--peers", strings.Join(peers, ","), "--config", filepath.Join(d.dir, "coordinator.toml"),
			"--tls-cert", certFile, "--tls-key", keyFile, "--tls-ca", d.caFile); err != nil {
			return err
		}
		d.urls = append(d.urls, "https://"+httpA[id])
	}
	d.ctl, err = client.New(d.urls[0], client.Options{Token: d.opToken, TLS: &tls.Config{RootCAs: d.ca.pool, MinVersion: tls.VersionTLS12}})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := d.ctl.Status(ctx)
		if err == nil && st.Leader != "" && len(st.Members) == 3 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no quorum within 30 s (logs in %s)", d.dir)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := d.krollctl(ctx, "cluster", "members"); err != nil {
		return err
	}
	// One reboot at a time per datacenter and half of it always serving
	// (with a single VM per datacenter, the floor would forbid any reboot).
	slots, floor := "1", "50"
	if d.o.sim {
		slots = "5"
	} else if d.o.perDC < 2 {
		floor = "0"
	}
	for _, dc := range demoDCs {
		if err := d.krollctl(ctx, "dc", "set", dc, "--create", "--slots", slots, "--min-healthy-pct", floor, "--window", "Mon-Sun 02:00-04:00 Europe/Berlin"); err != nil {
			return err
		}
	}
	return nil
}

// signingKey creates DIR/name.key and name.pub.
func signingKey(dir, name string) (ed25519.PrivateKey, error) {
	if _, err := signing.GenerateKeyFiles(filepath.Join(dir, name), false); err != nil {
		return nil, err
	}
	return signing.LoadPrivateKey(filepath.Join(dir, name+".key"))
}

// addRelease serves the kernel package and adds its signed release.
func (d *demo) addRelease(ctx context.Context, k *vm.Kernel) (release.Manifest, error) {
	d.step("an artifact server with the kernel package, and its signed release")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return release.Manifest{}, err
	}
	mux := http.NewServeMux()
	var size int64
	sum := strings.Repeat("0", 64)
	name := "linux-image-sim.deb"
	if k.Deb != "" {
		name = filepath.Base(k.Deb)
		f, err := os.Open(k.Deb)
		if err != nil {
			return release.Manifest{}, err
		}
		h := sha256.New()
		size, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return release.Manifest{}, err
		}
		sum = hex.EncodeToString(h.Sum(nil))
		mux.HandleFunc("GET /"+name, func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, k.Deb) })
	} else {
		size = 1
	}
	go http.Serve(ln, mux)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	m := release.Manifest{ID: "bookworm-" + strings.SplitN(k.PackageVersion, "-", 2)[0], Line: "6.1", KernelVersion: k.Release,
		UpstreamVersion: strings.SplitN(k.PackageVersion, "-", 2)[0], Kind: release.KindDeb,
		Artifacts: []release.Artifact{{Name: name, URL: "http://" + vm.HostAddr + ":" + port + "/" + name, Size: size, SHA256: sum}},
		Created:   time.Now().UTC().Truncate(time.Second), Notes: "kroll demo",
		// What `cve show` counts as patched (the coordinator cannot tell
		// the upstream version from a Debian ABI name such as 6.1.0-56).
		Fixes: []string{"CVE-2026-31431"}}
	canon, err := m.Canonical()
	if err != nil {
		return m, err
	}
	sig, err := release.SignManifest(d.relKey, m)
	if err != nil {
		return m, err
	}
	path := filepath.Join(d.dir, "release.json")
	if err := writeFile(path, canon); err != nil {
		return m, err
	}
	if err := writeFile(path+".sig", sig.Marshal()); err != nil {
		return m, err
	}
	return m, d.krollctl(ctx, "release", "add", path)
}

// waitHosts waits until n hosts are registered: 3 minutes for simulated
// hosts, 6 for VMs (TCG boots on a machine whose cores other VMs share
// can take minutes).
func (d *demo) waitHosts(ctx context.Context, n int) error {
	wait := 3 * time.Minute
	if !d.o.sim {
		wait = 6 * time.Minute
	}
	deadline := time.Now().Add(wait)
	for {
		hs, err := d.ctl.Hosts(ctx, "")
		if err == nil && len(hs) >= n {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("only %d of %d hosts registered (logs in %s)", len(hs), n, d.dir)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// demoPolicy is the Copy Fail stopgap. The demo's "fix" is in 6.1.180, so
// the mitigation is in force on the hosts' old 6.1.170 kernel and retires
// itself once they run the new one.
func demoPolicy(version int, mode string) string {
	return fmt.Sprintf(`# Stopgap for CVE-2026-31431 ("Copy Fail"): no AF_ALG sockets.
id: copy-fail
cve: CVE-2026-31431
version: %d
kind: socket-family
mode: %s
params:
  family: AF_ALG
  operations: [create, bind]
applies_to:
  fixed_in: ["6.12.85", "6.18.22", "6.1.180"]
  datacenters: []
expires: 2099-12-31T00:00:00Z
issued: %s
`, version, mode, time.Now().UTC().Format(time.RFC3339))
}

// mitigate pushes the Copy Fail policy in audit mode, then enforce mode,
// and shows the coverage each time.
func (d *demo) mitigate(ctx context.Context, hosts int) error {
	for v, mode := range []string{"audit", "enforce"} {
		d.step("push the signed Copy Fail mitigation, mode %s", mode)
		doc := demoPolicy(v+1, mode)
		path := filepath.Join(d.dir, fmt.Sprintf("copy-fail-v%d.yaml", v+1))
		if err := writeFile(path, []byte(doc)); err != nil {
			return err
		}
		if err := exec.CommandContext(ctx, filepath.Join(d.o.bin, "krollctl"), "sign", "--key", filepath.Join(d.dir, "policy.key"), path).Run(); err != nil {
			return fmt.Errorf("sign policy: %w", err)
		}
		if err := d.krollctl(ctx, "policy", "push", path); err != nil {
			return err
		}
		want := map[string]string{"audit": "auditing", "enforce": "enforcing"}[mode]
		deadline := time.Now().Add(2 * time.Minute)
		for {
			ps, err := d.ctl.Policies(ctx)
			in := 0
			if err == nil && len(ps) == 1 {
				for _, c := range ps[0].Coverage {
					in += c[fmt.Sprintf("%s v%d", want, v+1)]
					if d.o.sim {
						in += c[fmt.Sprintf("unavailable v%d", v+1)]
					}
				}
			}
			if in >= hosts {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("policy v%d in force on %d of %d hosts after 2 min", v+1, in, hosts)
			}
			time.Sleep(time.Second)
		}
		if err := d.krollctl(ctx, "policy", "list"); err != nil {
			return err
		}
	}
	return nil
}

// summary prints host, DC, kernel before → after, boot method, phases.
func (d *demo) summary() {
	d.step("summary")
	d.mu.Lock()
	rows := append([]row(nil), d.rows...)
	d.mu.Unlock()
	sort.Slice(rows, func(i, j int) bool { return rows[i].dc+rows[i].host < rows[j].dc+rows[j].host })
	tw := tabwriter.NewWriter(d.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tDC\tKERNEL BEFORE → AFTER\tMETHOD\tSTAGING\tWAITING-SLOT\tDRAINING\tREBOOTING\tVERIFYING")
	for _, r := range rows {
		p := func(ph string) string {
			if v, ok := r.phases[ph]; ok {
				return v.Round(100 * time.Millisecond).String()
			}
			return "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s → %s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.host, r.dc, r.before, r.after, r.method,
			p(wire.PhaseStaging), p(wire.PhaseWaitingSlot), p(wire.PhaseDraining), p(wire.PhaseRebooting), p(wire.PhaseVerifying))
	}
	tw.Flush()
}
