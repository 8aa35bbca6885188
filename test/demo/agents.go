package main

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/kroll-dev/kroll/agent/lifecycle"
	"github.com/kroll-dev/kroll/agent/policysync"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/release"
	"github.com/kroll-dev/kroll/test/simhost"
	"github.com/kroll-dev/kroll/test/vm"
	"github.com/kroll-dev/kroll/test/vm/guest"
)

// startAgents starts the agents and returns a function that waits until
// they finished with the release (and records the summary rows).
func (d *demo) startAgents(ctx context.Context, old *vm.Kernel, rel release.Manifest) (func() error, error) {
	if d.o.sim {
		return d.startSimAgents(ctx, rel)
	}
	return d.startVMAgents(ctx, old, rel)
}

// guestScript runs in every boot of a demo VM: the host's network
// configuration announces its anycast prefix (a dummy interface and a
// route in the BGP-exported table 100), the agent runs until it is done
// with the release.
func guestScript(releaseID string) string {
	return `
ip link add anycast0 type dummy || fail anycast0
ip link set anycast0 up
ip addr add 192.0.2.1/32 dev anycast0
ip route add 192.0.2.0/24 dev anycast0 table 100 || fail route
report() { echo; echo "` + guest.Marker + `$1 \"$2\""; }
report boot "$(uname -r)"
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
sleep 3
kill -TERM $agent
wait $agent
report final_kernel "$(uname -r)"
`
}

func (d *demo) agentConfig(host, dc, stateDir, bootDir, coordHost string, certFile, keyFile, caFile string) string {
	var urls []string
	for _, u := range d.urls {
		pu, _ := url.Parse(u)
		urls = append(urls, fmt.Sprintf("%q", "https://"+coordHost+":"+pu.Port()))
	}
	return fmt.Sprintf(`host_id = %q
datacenter = %q
kernel_line = "6.1"
state_dir = %q
[coordinator]
urls = [%s]
ca_file = %q
cert_file = %q
key_file = %q
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
boot_dir = %q
# The busybox guest has no dpkg or depmod: the harness installs the
# target's modules and initrd; the agent only stages.
[install]
mode = "off"
[timing]
retry_interval = "2s"
heartbeat_interval = "2s"
renew_interval = "10s"
`, host, dc, stateDir, strings.Join(urls, ", "), caFile, certFile, keyFile, bootDir)
}

func (d *demo) startVMAgents(ctx context.Context, old *vm.Kernel, rel release.Manifest) (func() error, error) {
	newK, err := vm.NewestKernel(ctx, vm.Line61)
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for _, dc := range demoDCs {
		for i := range d.o.perDC {
			host := fmt.Sprintf("%s-vm%d", dc, i+1)
			dir := filepath.Join(d.dir, host)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, err
			}
			certFile, keyFile, _, err := d.ca.issue(dir, "agent", "agent", host)
			if err != nil {
				return nil, err
			}
			cfg := d.agentConfig(host, dc, "/data/kroll", "/data/boot", vm.HostAddr, "/kroll/pki/agent.pem", "/kroll/pki/agent.key", "/kroll/pki/ca.pem")
			if err := writeFile(filepath.Join(dir, "agent.toml"), []byte(cfg)); err != nil {
				return nil, err
			}
			fmt.Fprintf(d.out, "booting %s (%s) in qemu on %s\n", host, dc, old.Release)
			wg.Go(func() {
				// The console streams to its file: a VM whose agent never
				// registers can be read while it still runs.
				consoleFile := filepath.Join(dir, "console.log")
				console, err := os.OpenFile(consoleFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
				if err != nil {
					errs <- fmt.Errorf("%s: %w", host, err)
					return
				}
				defer console.Close()
				res, err := vm.Run(ctx, vm.Config{
					Kernel: old, Extra: []*vm.Kernel{newK}, Script: guestScript(rel.ID), Modules: []string{"dummy", "tcp_diag"}, Network: true,
					Files: map[string]string{
						"kroll/kroll-agent": filepath.Join(d.o.bin, "kroll-agent"), "kroll/agent.toml": filepath.Join(dir, "agent.toml"),
						"kroll/release.pub": filepath.Join(d.dir, "release.pub"), "kroll/policy.pub": filepath.Join(d.dir, "policy.pub"),
						"kroll/pki/ca.pem": d.caFile, "kroll/pki/agent.pem": certFile, "kroll/pki/agent.key": keyFile,
					},
					DiskMB: 384, MemoryMB: 1024, Timeout: 12 * time.Minute, Console: console,
					// Every VM runs until the rollout is done: they
					// must all run at once, whatever other processes'
					// VMs hold the shared slots.
					Unqueued: true,
				})
				if err != nil {
					errs <- fmt.Errorf("%s: %w (console in %s)", host, err, consoleFile)
					return
				}
				r := row{host: host, dc: dc, before: old.Release, phases: map[string]time.Duration{}, boots: res.Boots}
				if s, ok := res.Get("final_kernel"); ok {
					json.Unmarshal(s, &r.after)
				}
				r.phases, r.method = phasesFromConsole(res.Console)
				d.mu.Lock()
				d.rows = append(d.rows, r)
				d.mu.Unlock()
			})
		}
	}
	return func() error {
		wg.Wait()
		close(errs)
		for err := range errs {
			return err
		}
		return nil
	}, nil
}

var (
	phaseLine   = regexp.MustCompile(`time=(\S+) level=INFO msg=phase .*from=(\S+) to=(\S+)`)
	bootingLine = regexp.MustCompile(`msg=booting .*method=(\S+)`)
)

// phasesFromConsole sums the agent's time per phase from its log lines
// and finds the boot method.
func phasesFromConsole(lines []string) (map[string]time.Duration, string) {
	out := map[string]time.Duration{}
	method := "-"
	var prev time.Time
	var prevPhase string
	for _, l := range lines {
		if m := bootingLine.FindStringSubmatch(l); m != nil && method == "-" {
			method = m[1]
		}
		m := phaseLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			continue
		}
		if prevPhase != "" {
			out[prevPhase] += t.Sub(prev)
		}
		prev, prevPhase = t, m[3]
	}
	return out, method
}

// recorder is a slog.Handler that records one simulated agent's phase
// transitions and boot method for the summary, dropping everything else.
type recorder struct {
	mu     *sync.Mutex
	phases map[string]time.Duration
	method *string
	prev   *time.Time
	phase  *string
}

func newRecorder() recorder {
	m := "-"
	return recorder{mu: &sync.Mutex{}, phases: map[string]time.Duration{}, method: &m, prev: new(time.Time), phase: new(string)}
}

func (r recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r recorder) WithGroup(string) slog.Handler            { return r }

func (r recorder) Handle(_ context.Context, rec slog.Record) error {
	attrs := map[string]string{}
	rec.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
	r.mu.Lock()
	defer r.mu.Unlock()
	switch rec.Message {
	case "booting":
		if *r.method == "-" {
			*r.method = attrs["method"]
		}
	case "phase":
		if *r.phase != "" {
			r.phases[*r.phase] += rec.Time.Sub(*r.prev)
		}
		*r.prev, *r.phase = rec.Time, attrs["to"]
	}
	return nil
}

// simAgent is one simulated host of the demo and its summary.
type simAgent struct {
	host *simhost.Host
	row  *row
	rec  recorder
}

// simFleet are the demo's simulated hosts: the agents run until stop.
type simFleet struct {
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu     sync.Mutex
	agents []simAgent
}

// addSimHost starts a simulated host id in dc running kernel (upstream
// version upstream) with the real agent and policy sync.
func (d *demo) addSimHost(ctx context.Context, id, dc, kernel, upstream string) error {
	f := d.sim
	relPub, _ := d.relKey.Public().(ed25519.PublicKey)
	polPub, _ := d.polKey.Public().(ed25519.PublicKey)
	f.mu.Lock()
	n := len(f.agents) + 1
	f.mu.Unlock()
	dir := filepath.Join(d.dir, "sim", id)
	h, err := simhost.New(id, dir, kernel, upstream,
		simhost.Durations{Stage: 3 * time.Second, Drain: 2 * time.Second, Boot: 4 * time.Second}, []ed25519.PublicKey{relPub}, uint64(n))
	if err != nil {
		return err
	}
	_, _, cert, err := d.ca.issue("", "", "agent", id)
	if err != nil {
		return err
	}
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: d.ca.pool, MinVersion: tls.VersionTLS12}
	var cls []*client.Client
	for j := range d.urls {
		c, err := client.New(d.urls[(n+j)%len(d.urls)], client.Options{TLS: tlsCfg, Timeout: 10 * time.Second})
		if err != nil {
			return err
		}
		cls = append(cls, c)
	}
	fo, err := client.NewFailover(cls...)
	if err != nil {
		return err
	}
	mit := simhost.NewMitigations(h)
	syncer, err := policysync.New(ctx, policysync.Config{Datacenter: dc, Trusted: []ed25519.PublicKey{polPub}, Manager: mit,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	rec := newRecorder()
	f.mu.Lock()
	f.agents = append(f.agents, simAgent{host: h, row: &row{host: id, dc: dc, before: kernel}, rec: rec})
	f.mu.Unlock()
	cfg := lifecycle.Config{HostID: id, Datacenter: dc, KernelLine: "6.1", Coordinator: fo, Policies: mit.Statuses,
		OnDesired: syncer.Desired, RetryInterval: 2 * time.Second, HeartbeatInterval: 2 * time.Second, RenewInterval: 10 * time.Second}
	agentCtx := f.ctx
	f.wg.Go(func() {
		if err := h.Agent(agentCtx, cfg, filepath.Join(dir, "state"), slog.New(rec)); err != nil && agentCtx.Err() == nil {
			fmt.Fprintf(d.out, "%s: %v\n", id, err)
		}
	})
	return nil
}

func (d *demo) startSimAgents(ctx context.Context, _ release.Manifest) (func() error, error) {
	agentCtx, stop := context.WithCancel(ctx)
	d.sim = &simFleet{ctx: agentCtx, stop: stop}
	n := 0
	for _, dc := range demoDCs {
		for i := range d.o.perDC * 25 {
			n++
			if err := d.addSimHost(ctx, fmt.Sprintf("%s-sim%03d", dc, i+1), dc, "6.1.0-47-amd64", "6.1.170"); err != nil {
				stop()
				return nil, err
			}
		}
	}
	fmt.Fprintf(d.out, "%d simulated hosts (test/simhost: timed fakes of staging, drain and boot) run the real agent lifecycle in this process\n", n)
	return func() error {
		f := d.sim
		f.stop()
		f.wg.Wait()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, a := range f.agents {
			k, boots := a.host.Kernel()
			a.rec.mu.Lock()
			r := *a.row
			r.after, r.boots, r.method = k, boots, *a.rec.method
			r.phases = map[string]time.Duration{}
			for p, v := range a.rec.phases {
				r.phases[p] = v
			}
			a.rec.mu.Unlock()
			d.mu.Lock()
			d.rows = append(d.rows, r)
			d.mu.Unlock()
		}
		return nil
	}, nil
}
