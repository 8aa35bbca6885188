package cluster_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/api"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// binEnv names the environment variable that holds the kroll-coordinator
// binary under test. TestMain builds one into a temporary directory and sets
// it unless it is already set (e.g. to bin/kroll-coordinator after `make
// build`).
const binEnv = "KROLL_COORDINATOR_BIN"

// coordinatorPkg is the main package TestMain builds.
const coordinatorPkg = "github.com/kroll-dev/kroll/coordinator/cmd/kroll-coordinator"

// TestMain builds kroll-coordinator once for the whole test binary.
func TestMain(m *testing.M) { os.Exit(testMain(m)) }

// testMain builds the binary into a temporary directory, unless $KROLL_COORDINATOR_BIN
// or $KROLL_BENCH_COORDINATOR (the benchmarks' name for it, which wins)
// names one, runs the tests and returns their exit code.
func testMain(m *testing.M) int {
	if spec := os.Getenv(benchSlotAgentEnv); spec != "" {
		return slotAgentMain(spec) // this process is the region benchmark's slot agent
	}
	if bin := os.Getenv(benchCoordinatorEnv); bin != "" {
		if err := os.Setenv(binEnv, bin); err != nil {
			fmt.Fprintln(os.Stderr, "test/cluster:", err)
			return 1
		}
	}
	if os.Getenv(binEnv) != "" {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "kroll-cluster-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "test/cluster:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "kroll-coordinator")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, coordinatorPkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "test/cluster: go build %s: %v\n%s", coordinatorPkg, err, out)
		return 1
	}
	if err := os.Setenv(binEnv, bin); err != nil {
		fmt.Fprintln(os.Stderr, "test/cluster:", err)
		return 1
	}
	return m.Run()
}

// requestTimeout bounds one HTTP request of the tests' clients; a request
// that runs into it has an unknown outcome.
const requestTimeout = 8 * time.Second

// cluster is a kroll-coordinator quorum of OS processes on loopback. Its
// methods must be called from the test's goroutine, except the clients,
// which are safe for concurrent use.
type cluster struct {
	tb         testing.TB
	bin        string
	dir        string
	configPath string
	peers      string
	adminToken string
	agentToken string
	hc         *http.Client
	nodes      []*node
}

// node is one kroll-coordinator process with its fixed addresses and data
// directory; it keeps them across restarts.
type node struct {
	id       string
	raftAddr string
	httpAddr string
	dataDir  string
	logPath  string
	cmd      *exec.Cmd
	exited   chan struct{} // closed once cmd has exited
	killed   bool          // the test killed cmd
}

// running reports whether the node's process is alive.
func (n *node) running() bool {
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// url returns the node's HTTP base URL.
func (n *node) url() string { return "http://" + n.httpAddr }

// newCluster writes a configuration (an admin token, an agent token, a peer
// token file; long leases so that nothing expires during a test) and
// starts n nodes, waiting until every one is ready. The processes are
// SIGKILLed when the test ends.
func newCluster(tb testing.TB, n int) *cluster {
	tb.Helper()
	return newClusterSlots(tb, n, defaultSlots)
}

// defaultSlots is the [slots] table of newCluster's configuration.
const defaultSlots = `lease = "10m"
reboot_deadline = "1h"
alive_within = "1h"`

// newClusterSlots is newCluster with slots as the [slots] table.
func newClusterSlots(tb testing.TB, n int, slots string) *cluster {
	tb.Helper()
	bin := os.Getenv(binEnv)
	if bin == "" {
		tb.Fatalf("%s is not set: TestMain did not build kroll-coordinator", binEnv)
	}
	dir := tb.TempDir()
	c := &cluster{tb: tb, bin: bin, dir: dir, adminToken: randomToken(tb), agentToken: randomToken(tb)}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 512, 256
	c.hc = &http.Client{Transport: tr, Timeout: requestTimeout}

	peerTokenPath := filepath.Join(dir, "peer.token")
	writeFile(tb, peerTokenPath, randomToken(tb)+"\n")
	c.configPath = filepath.Join(dir, "coordinator.toml")
	writeFile(tb, c.configPath, fmt.Sprintf(`[slots]
%s

[auth]
peer_token_file = %q

[[auth.tokens]]
name = "test-admin"
role = "admin"
sha256 = %q

[[auth.tokens]]
name = "test-agent"
role = "agent"
sha256 = %q
`, slots, peerTokenPath, api.HashToken(c.adminToken), api.HashToken(c.agentToken)))

	addrs := freeAddrs(tb, 2*n)
	var peers []string
	for i := range n {
		nd := &node{
			id: fmt.Sprintf("c%d", i+1), raftAddr: addrs[2*i], httpAddr: addrs[2*i+1],
			dataDir: filepath.Join(dir, fmt.Sprintf("c%d", i+1)),
		}
		nd.logPath = nd.dataDir + ".log"
		c.nodes = append(c.nodes, nd)
		peers = append(peers, nd.id+"="+nd.raftAddr)
	}
	c.peers = strings.Join(peers, ",")
	tb.Cleanup(func() {
		for _, nd := range c.nodes {
			if nd.running() {
				_ = nd.cmd.Process.Kill()
				<-nd.exited
			}
		}
		if tb.Failed() {
			for _, nd := range c.nodes {
				tb.Logf("last lines of %s's log:\n%s", nd.id, tail(nd.logPath, 25))
			}
		}
	})
	for i := range c.nodes {
		c.start(i)
	}
	for i := range c.nodes {
		c.waitReady(i, 20*time.Second)
	}
	c.waitLeaderKnown(20 * time.Second)
	return c
}

// waitLeaderKnown waits until every running node knows the leader and its
// HTTP address: /readyz answers 200 as soon as a node knows the leader's
// id, but it forwards writes only once the leader's address has been
// replicated to it.
func (c *cluster) waitLeaderKnown(timeout time.Duration) {
	c.tb.Helper()
	deadline := time.Now().Add(timeout)
	for i, nd := range c.nodes {
		for nd.running() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			ms, err := c.admin(i).Members(ctx)
			cancel()
			if err == nil && slices.ContainsFunc(ms, func(m wire.Member) bool { return m.Leader && m.HTTPAddr != "" }) {
				break
			}
			if time.Now().After(deadline) {
				c.tb.Fatalf("%s does not know the leader's HTTP address within %s (members %+v, %v)", nd.id, timeout, ms, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// start starts node i's process with the cluster's flags and configuration.
// nodeEnvVar names extra environment variables (space-separated
// NAME=value) for the coordinator processes only.
const nodeEnvVar = "KROLL_BENCH_NODE_ENV"

func (c *cluster) start(i int) {
	c.tb.Helper()
	nd := c.nodes[i]
	if nd.running() {
		c.tb.Fatalf("start %s: already running", nd.id)
	}
	logf, err := os.OpenFile(nd.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		c.tb.Fatal(err)
	}
	cmd := exec.Command(c.bin, "--node-id", nd.id, "--data-dir", nd.dataDir,
		"--raft-addr", nd.raftAddr, "--http-addr", nd.httpAddr, "--peers", c.peers, "--config", c.configPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if extra := os.Getenv(nodeEnvVar); extra != "" {
		// Benchmarks only: runtime settings of the nodes alone (e.g.
		// GOGC), not of the load generator in this process.
		cmd.Env = append(os.Environ(), strings.Fields(extra)...)
	}
	// Die with the test binary, even when it is killed itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.tb.Fatalf("start %s: %v", nd.id, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	nd.cmd, nd.exited, nd.killed = cmd, exited, false
}

// kill SIGKILLs node i and waits until its process is gone.
func (c *cluster) kill(i int) {
	c.tb.Helper()
	nd := c.nodes[i]
	if !nd.running() {
		c.tb.Fatalf("kill %s: not running", nd.id)
	}
	if err := nd.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.tb.Fatalf("kill %s: %v", nd.id, err)
	}
	nd.killed = true
	<-nd.exited
}

// checkAlive fails the test if a node the test did not kill has exited.
func (c *cluster) checkAlive() {
	c.tb.Helper()
	for _, nd := range c.nodes {
		if nd.cmd != nil && !nd.killed && !nd.running() {
			c.tb.Fatalf("%s exited on its own (%s):\n%s", nd.id, nd.cmd.ProcessState, tail(nd.logPath, 20))
		}
	}
}

// waitReady waits until node i answers /readyz with 200.
func (c *cluster) waitReady(i int, timeout time.Duration) {
	c.tb.Helper()
	nd := c.nodes[i]
	deadline := time.Now().Add(timeout)
	for {
		c.checkAlive()
		resp, err := c.hc.Get(nd.url() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("%s not ready within %s (last: %v)", nd.id, timeout, errOrStatus(resp, err))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// errOrStatus describes the outcome of an HTTP request.
func errOrStatus(resp *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return resp.Status
}

// client returns a typed API client of node i with token.
func (c *cluster) client(i int, token string) *client.Client {
	c.tb.Helper()
	cl, err := client.New(c.nodes[i].url(), client.Options{Token: token, HTTPClient: c.hc})
	if err != nil {
		c.tb.Fatal(err)
	}
	return cl
}

// admin returns node i's client with the admin token.
func (c *cluster) admin(i int) *client.Client { return c.client(i, c.adminToken) }

// agent returns node i's client with the agent token.
func (c *cluster) agent(i int) *client.Client { return c.client(i, c.agentToken) }

// leader returns the index of the running node that, asked itself, says it
// leads (GET /api/v1/cluster/members), or -1.
func (c *cluster) leader() int {
	for i, nd := range c.nodes {
		if !nd.running() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ms, err := c.admin(i).Members(ctx)
		cancel()
		if err != nil {
			continue
		}
		for _, m := range ms {
			if m.Leader && m.ID == nd.id {
				return i
			}
		}
	}
	return -1
}

// waitLeader waits for a running node that leads and returns its index.
func (c *cluster) waitLeader(timeout time.Duration) int {
	c.tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if l := c.leader(); l >= 0 {
			return l
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("no leader within %s", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// setupDatacenters creates the datacenters with their slot limits (no
// capacity floor, no window) and registers each host in its datacenter
// with one heartbeat.
func (c *cluster) setupDatacenters(limits map[string]int, hosts map[string]string) {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	zero := 0
	for dc, limit := range limits {
		if _, err := c.admin(0).SetDatacenter(ctx, dc, wire.DatacenterUpdate{SlotLimit: &limit, MinHealthyPct: &zero}); err != nil {
			c.tb.Fatalf("set datacenter %s: %v", dc, err)
		}
	}
	for host, dc := range hosts {
		if _, err := c.agent(0).Heartbeat(ctx, wire.Heartbeat{HostID: host, Datacenter: dc, Phase: wire.PhaseIdle}); err != nil {
			c.tb.Fatalf("heartbeat %s: %v", host, err)
		}
	}
}

// clusterView is what the operator API shows of slots and hosts.
type clusterView struct {
	Slots []wire.Slot
	Hosts []wire.Host
}

// view reads slots and hosts from node i.
func (c *cluster) view(i int) (clusterView, error) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	var v clusterView
	var err error
	if v.Slots, err = c.admin(i).Slots(ctx, ""); err != nil {
		return v, err
	}
	v.Hosts, err = c.admin(i).Hosts(ctx, "")
	return v, err
}

// waitConverged waits until every node shows the same slots and hosts and,
// when want is not nil, that they equal *want; it returns the view.
func (c *cluster) waitConverged(timeout time.Duration, want *clusterView) clusterView {
	c.tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		views := make([]clusterView, len(c.nodes))
		var problem error
		for i := range c.nodes {
			v, err := c.view(i)
			if err != nil {
				problem = fmt.Errorf("%s: %w", c.nodes[i].id, err)
				break
			}
			views[i] = v
			if d := diffViews(views[0], v); d != "" {
				problem = fmt.Errorf("%s differs from %s: %s", c.nodes[i].id, c.nodes[0].id, d)
				break
			}
			if want != nil {
				if d := diffViews(*want, v); d != "" {
					problem = fmt.Errorf("%s differs from the expected view: %s", c.nodes[i].id, d)
					break
				}
			}
		}
		if problem == nil {
			return views[0]
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("views did not converge within %s: %v", timeout, problem)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// diffViews describes the first difference between two views, "" when
// they are equal.
func diffViews(a, b clusterView) string {
	if len(a.Slots) != len(b.Slots) {
		return fmt.Sprintf("%d slots vs %d", len(a.Slots), len(b.Slots))
	}
	for i := range a.Slots {
		x, y := a.Slots[i], b.Slots[i]
		if x.Datacenter != y.Datacenter || x.HostID != y.HostID || x.Token != y.Token || x.Owner != y.Owner ||
			x.Lost != y.Lost || !x.Granted.Equal(y.Granted) || !x.LeaseExpires.Equal(y.LeaseExpires) || !x.RebootDeadline.Equal(y.RebootDeadline) {
			return fmt.Sprintf("slot %d: %+v vs %+v", i, x, y)
		}
	}
	if len(a.Hosts) != len(b.Hosts) {
		return fmt.Sprintf("%d hosts vs %d", len(a.Hosts), len(b.Hosts))
	}
	for i := range a.Hosts {
		x, y := a.Hosts[i], b.Hosts[i]
		if x.ID != y.ID || x.Datacenter != y.Datacenter || x.Phase != y.Phase || x.Alive != y.Alive ||
			x.Lost != y.Lost || x.Unhealthy != y.Unhealthy || !x.LastHeartbeat.Equal(y.LastHeartbeat) ||
			(x.Slot == nil) != (y.Slot == nil) || (x.Slot != nil && x.Slot.Token != y.Slot.Token) {
			return fmt.Sprintf("host %d: %+v vs %+v", i, x, y)
		}
	}
	return ""
}

// freeAddrs returns n distinct loopback addresses whose ports were free a
// moment ago.
func freeAddrs(tb testing.TB, n int) []string {
	tb.Helper()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	addrs := make([]string, n)
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		lns = append(lns, ln)
		addrs[i] = ln.Addr().String()
	}
	return addrs
}

// randomToken returns 32 random bytes in hex.
func randomToken(tb testing.TB) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// writeFile writes content to path, readable by the owner only.
func writeFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// isDialError reports whether err is a failure to connect: the request
// never reached the server, so it cannot have had an effect.
func isDialError(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}
