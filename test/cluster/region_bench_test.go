package cluster_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// Environment variables of BenchmarkRegionHeartbeats. They are read when
// the benchmark starts, so `go test -bench` flags stay the usual ones.
const (
	// benchCoordinatorEnv names the kroll-coordinator binary to measure
	// (e.g. a baseline build); testMain uses it instead of building one.
	benchCoordinatorEnv = "KROLL_BENCH_COORDINATOR"
	// benchAgentsEnv lists the agent counts of the rows, comma-separated.
	benchAgentsEnv = "KROLL_BENCH_AGENTS"
	// benchWindowEnv is the measurement window (a Go duration).
	benchWindowEnv = "KROLL_BENCH_WINDOW"
	// benchWarmupEnv is the time the load runs before the window opens.
	benchWarmupEnv = "KROLL_BENCH_WARMUP"
	// benchWorkersEnv bounds the load generator's concurrent requests.
	benchWorkersEnv = "KROLL_BENCH_WORKERS"
	// benchDCsEnv is how many datacenters the agents spread over.
	benchDCsEnv = "KROLL_BENCH_DCS"
	// benchKeepEnv names a directory that receives, per row, each node's
	// log, a CPU profile of each node over the window (GET
	// /debug/pprof/profile) and a heap profile after it: what to read
	// when a row misses its target.
	benchKeepEnv = "KROLL_BENCH_KEEP"
)

// regionParams are the settings of one BenchmarkRegionHeartbeats row.
type regionParams struct {
	agents    int           // heartbeating agents
	dcs       int           // datacenters they spread over
	interval  time.Duration // each agent's heartbeat interval
	warmup    time.Duration // load before the window opens
	window    time.Duration // the measurement window
	timeout   time.Duration // one request's timeout: past it, it failed
	workers   int           // bound on concurrent heartbeat requests
	slotEvery time.Duration // the slot agent's acquire+release period
	slotLimit int           // every datacenter's slot limit
	registrar int           // concurrent registrations before the load
	keep      string        // where to keep logs and profiles; "" none
}

// defaultRegionRows are the agent counts of the table.
var defaultRegionRows = []int{10_000, 50_000, 100_000, 200_000}

// regionParamsFromEnv returns the rows' agent counts and the common
// parameters, from the defaults and the KROLL_BENCH_* variables in env.
func regionParamsFromEnv(getenv func(string) string) ([]int, regionParams, error) {
	p := regionParams{
		dcs: 330, interval: 10 * time.Second, warmup: 10 * time.Second, window: 30 * time.Second,
		timeout: 10 * time.Second, workers: 8192, slotEvery: 200 * time.Millisecond, slotLimit: 5, registrar: 128,
	}
	rows := defaultRegionRows
	if v := getenv(benchAgentsEnv); v != "" {
		rows = nil
		for f := range strings.SplitSeq(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(strings.ReplaceAll(f, "_", "")))
			if err != nil || n < 1 {
				return nil, p, fmt.Errorf("%s: %q is not a positive agent count", benchAgentsEnv, f)
			}
			rows = append(rows, n)
		}
	}
	for _, d := range []struct {
		env string
		dst *time.Duration
	}{{benchWindowEnv, &p.window}, {benchWarmupEnv, &p.warmup}} {
		if v := getenv(d.env); v != "" {
			t, err := time.ParseDuration(v)
			if err != nil || t <= 0 {
				return nil, p, fmt.Errorf("%s: %q is not a positive duration", d.env, v)
			}
			*d.dst = t
		}
	}
	for _, d := range []struct {
		env string
		dst *int
	}{{benchWorkersEnv, &p.workers}, {benchDCsEnv, &p.dcs}} {
		if v := getenv(d.env); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return nil, p, fmt.Errorf("%s: %q is not a positive number", d.env, v)
			}
			*d.dst = n
		}
	}
	p.keep = getenv(benchKeepEnv)
	return rows, p, nil
}

// BenchmarkRegionHeartbeats measures a region quorum under its agents'
// heartbeats (issue 13): three kroll-coordinator processes on loopback
// (raft-wal fsyncing every append), N agents registered in 330
// datacenters, each heartbeating every 10 s to one of the three nodes
// (agent i to node i mod 3, the agents' send times spread evenly over the
// interval) with a realistic body (kernel, boot id, two policy states, a
// gossip view, a gossip address, and — when pkg/wire has it — the desired
// state version from its last answer), and one of them also doing a slot
// acquire+release five times a second (pair k via node k mod 3).
//
// Per row it reports, over the window (by the heartbeats' scheduled times):
// hb_answered/s (200), hb_shed/s (429; the agent then waits Retry-After),
// hb_failed/s (timeouts after 10 s, transport errors, any other status),
// hb_skipped/s (beats an agent did not send because its previous one was
// still out or Retry-After had not passed), hb_lg_late/s (beats the load
// generator could not send within the timeout of their scheduled time;
// counted as failed too: a sign that it, not the quorum, was the limit),
// hb_p50_ms and hb_p99_ms of the answered heartbeats from their scheduled
// time, slot_ok/s, slot_failed/s, slot_skipped/s, slot_p50_ms and
// slot_p99_ms of the acquire+release pairs, the largest resident set of
// each node during the window (rss_mb_c1…c3, rss_mb_max), the CPU cores
// the nodes and the load generator used on average (cpu_nodes,
// cpu_loadgen) and registrations/s before the load.
//
// Rows: agents=10000, 50000, 100000, 200000, or the comma-separated list
// in $KROLL_BENCH_AGENTS. $KROLL_BENCH_WINDOW (30s), $KROLL_BENCH_WARMUP
// (10s), $KROLL_BENCH_WORKERS (8192 concurrent requests),
// $KROLL_BENCH_DCS (330) override the defaults; $KROLL_BENCH_COORDINATOR
// runs a given kroll-coordinator binary (scripts/bench-region.sh compares
// a baseline with the current tree). Each row runs once, whatever b.N.
//
// Run: KROLL_BENCH_AGENTS=10000 go test ./test/cluster/ -run '^$' -bench RegionHeartbeats -benchtime 1x -timeout 60m
func BenchmarkRegionHeartbeats(b *testing.B) {
	rows, p, err := regionParamsFromEnv(os.Getenv)
	if err != nil {
		b.Fatal(err)
	}
	raiseFileLimit(b, 3*p.workers+4096)
	for _, n := range rows {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			p := p
			p.agents = n
			runRegion(b, p)
		})
	}
}

// raiseFileLimit raises the soft limit of open files to at least want
// (bounded by the hard limit) before the nodes start: they inherit it, and
// each keeps one descriptor per load-generator connection.
func raiseFileLimit(tb testing.TB, want int) {
	tb.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		tb.Fatalf("getrlimit: %v", err)
	}
	if rl.Cur >= uint64(want) {
		return
	}
	rl.Cur = min(uint64(want), rl.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		tb.Fatalf("setrlimit: %v", err)
	}
}

// runRegion runs one row: cluster, datacenters, registration, load, and
// reports the metrics.
func runRegion(b *testing.B, p regionParams) {
	c := newCluster(b, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	setCtx, setCancel := context.WithTimeout(ctx, 2*time.Minute)
	zero, limit := 0, p.slotLimit
	for d := range p.dcs {
		upd := wire.DatacenterUpdate{SlotLimit: &limit, MinHealthyPct: &zero}
		if _, err := c.admin(d%len(c.nodes)).SetDatacenter(setCtx, benchDC(d), upd); err != nil {
			b.Fatalf("set datacenter %s: %v", benchDC(d), err)
		}
	}
	setCancel()

	lg := newHeartbeatLoad(c, p)
	t0 := time.Now()
	if err := lg.register(ctx); err != nil {
		b.Fatal(err)
	}
	regRate := float64(p.agents) / time.Since(t0).Seconds()
	b.Logf("registered %d agents in %s (%.0f/s)", p.agents, time.Since(t0).Round(time.Millisecond), regRate)

	b.ResetTimer()
	profiled := make(chan error, 2)
	if p.keep != "" {
		go func() { profiled <- keepProfiles(ctx, c, p) }()
		go func() { profiled <- keepPressure(ctx, c, p) }()
	} else {
		profiled <- nil
		profiled <- nil
	}
	res, err := lg.run(ctx, c)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	for range 2 {
		if err := <-profiled; err != nil {
			b.Logf("profiles: %v", err)
		}
	}
	if p.keep != "" {
		for _, nd := range c.nodes {
			if err := copyFile(nd.logPath, filepath.Join(p.keep, fmt.Sprintf("region-%d-%s.log", p.agents, nd.id))); err != nil {
				b.Logf("keep log: %v", err)
			}
		}
	}
	c.checkAlive()
	for _, e := range res.errSamples {
		b.Logf("sample failure: %s", e)
	}
	if len(res.slowPairs) > 0 {
		b.Logf("slot pairs over %s (start into the window: duration): %s", slowPair, strings.Join(res.slowPairs, " "))
		if p.keep != "" {
			path := filepath.Join(p.keep, fmt.Sprintf("region-%d-slowpairs.txt", p.agents))
			if err := os.WriteFile(path, []byte(strings.Join(res.slowPairLog, "\n")+"\n"), 0o644); err != nil {
				b.Logf("keep slow pairs: %v", err)
			}
		}
	}
	secs := p.window.Seconds()
	rate := func(n int64) float64 { return float64(n) / secs }
	b.ReportMetric(rate(res.answered), "hb_answered/s")
	b.ReportMetric(rate(res.shed), "hb_shed/s")
	b.ReportMetric(rate(res.failed), "hb_failed/s")
	b.ReportMetric(rate(res.skipped), "hb_skipped/s")
	b.ReportMetric(rate(res.lgLate), "hb_lg_late/s")
	b.ReportMetric(msQuantile(res.hbLat, 0.50, p.window), "hb_p50_ms")
	b.ReportMetric(msQuantile(res.hbLat, 0.99, p.window), "hb_p99_ms")
	b.ReportMetric(rate(int64(len(res.slotLat))), "slot_ok/s")
	b.ReportMetric(rate(res.slotFailed), "slot_failed/s")
	b.ReportMetric(rate(res.slotSkipped), "slot_skipped/s")
	b.ReportMetric(msQuantile(res.slotLat, 0.50, p.window), "slot_p50_ms")
	b.ReportMetric(msQuantile(res.slotLat, 0.99, p.window), "slot_p99_ms")
	b.ReportMetric(res.slotServerP99, "slot_call_server_p99_ms")
	var rssMax float64
	for i, r := range res.rssMB {
		b.ReportMetric(r, fmt.Sprintf("rss_mb_%s", c.nodes[i].id))
		rssMax = max(rssMax, r)
	}
	b.ReportMetric(rssMax, "rss_mb_max")
	b.ReportMetric(res.cpuNodes, "cpu_nodes")
	b.ReportMetric(res.cpuLoad, "cpu_loadgen")
	b.ReportMetric(regRate, "registrations/s")
	b.ReportMetric(0, "ns/op") // one run per row, whatever b.N: ns/op means nothing
}

// keepProfiles takes a CPU profile of every node over the measurement
// window (from the end of the warm-up, one second short of the window's
// end), then a heap profile of each (what its last garbage collection
// found live: go tool pprof -sample_index inuse_objects), into p.keep.
func keepProfiles(ctx context.Context, c *cluster, p regionParams) error {
	if err := os.MkdirAll(p.keep, 0o755); err != nil {
		return err
	}
	select {
	case <-time.After(p.warmup):
	case <-ctx.Done():
		return ctx.Err()
	}
	secs := min(max(1, int(p.window.Seconds())-1), 25) // under the server's 30 s write timeout
	errs := make(chan error, 2*len(c.nodes))
	for _, nd := range c.nodes {
		// An execution trace of 4 s, 5 s into the window (what a slow
		// slot call waited on: go tool trace -pprof=sync|sched).
		go func() {
			time.Sleep(5 * time.Second)
			errs <- keepDebug(ctx, c, fmt.Sprintf("%s/debug/pprof/trace?seconds=4", nd.url()),
				filepath.Join(p.keep, fmt.Sprintf("region-%d-%s.trace", p.agents, nd.id)), 40*time.Second)
		}()
		go func() {
			err := keepDebug(ctx, c, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", nd.url(), secs),
				filepath.Join(p.keep, fmt.Sprintf("region-%d-%s.pprof", p.agents, nd.id)), time.Duration(secs+30)*time.Second)
			errs <- errors.Join(err, keepDebug(ctx, c, nd.url()+"/debug/pprof/heap",
				filepath.Join(p.keep, fmt.Sprintf("region-%d-%s.heap", p.agents, nd.id)), 30*time.Second))
		}()
	}
	var all error
	for range 2 * len(c.nodes) {
		all = errors.Join(all, <-errs)
	}
	return all
}

// keepDebug saves the answer of an admin GET of url in path.
func keepDebug(ctx context.Context, c *cluster, url, path string, timeout time.Duration) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.adminToken)
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	return errors.Join(err, f.Close())
}

// keepPressure samples every node's pressure gauges (shed ratio,
// scheduling latency p99) once a second over the warm-up and the window
// into p.keep: a line per second, "t c1=ratio/p99ms c2=... c3=...".
func keepPressure(ctx context.Context, c *cluster, p regionParams) error {
	start := time.Now()
	var out strings.Builder
	hc := &http.Client{Timeout: 2 * time.Second}
	read := func(nd *node) string {
		resp, err := hc.Get(nd.url() + "/metrics")
		if err != nil {
			return "?"
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var ratio, p99 string
		for line := range strings.SplitSeq(string(body), "\n") {
			if v, ok := strings.CutPrefix(line, "kroll_api_pressure_shed_ratio "); ok {
				ratio = v
			}
			if v, ok := strings.CutPrefix(line, "kroll_sched_latency_p99_seconds "); ok {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					p99 = strconv.FormatFloat(f*1000, 'f', 1, 64)
				}
			}
		}
		return ratio + "/" + p99
	}
	for t := time.Now(); t.Sub(start) < p.warmup+p.window && ctx.Err() == nil; t = time.Now() {
		fmt.Fprintf(&out, "%5.1f", t.Sub(start).Seconds())
		for _, nd := range c.nodes {
			fmt.Fprintf(&out, " %s=%s", nd.id, read(nd))
		}
		out.WriteString("\n")
		time.Sleep(time.Second - time.Since(t)%time.Second)
	}
	return os.WriteFile(filepath.Join(p.keep, fmt.Sprintf("region-%d-pressure.txt", p.agents)), []byte(out.String()), 0o644)
}

// slotServerBuckets sums, over the nodes, the request duration histogram
// (kroll_api_request_duration_seconds) of the agent's slot acquire and
// release routes: cumulative counts by upper bound (seconds, as
// written). Each call counts once, at the node it arrived at (a
// forwarded one includes the forwarding).
func slotServerBuckets(c *cluster) map[string]float64 {
	out := map[string]float64{}
	hc := &http.Client{Timeout: 5 * time.Second}
	for _, nd := range c.nodes {
		resp, err := hc.Get(nd.url() + "/metrics")
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for line := range strings.SplitSeq(string(body), "\n") {
			if !strings.HasPrefix(line, "kroll_api_request_duration_seconds_bucket{") ||
				!(strings.Contains(line, wire.PathSlotAcquire+`"`) || strings.Contains(line, wire.PathSlotRelease+`"`)) {
				continue
			}
			_, rest, _ := strings.Cut(line, `le="`)
			le, val, _ := strings.Cut(rest, `"} `)
			n, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err == nil {
				out[le] += n
			}
		}
	}
	return out
}

// slotServerP99 is the 99th percentile (the bucket's upper bound, ms) of
// the slot calls counted between two slotServerBuckets.
func slotServerP99(before, after map[string]float64) float64 {
	type bucket struct{ le, n float64 }
	var bs []bucket
	for le, n := range after {
		bound, err := strconv.ParseFloat(le, 64)
		if le == "+Inf" {
			bound, err = math.Inf(1), nil
		}
		if err == nil {
			bs = append(bs, bucket{bound, n - before[le]})
		}
	}
	slices.SortFunc(bs, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	if len(bs) == 0 || bs[len(bs)-1].n == 0 {
		return 0
	}
	total := bs[len(bs)-1].n // the +Inf bucket counts every call
	for _, b := range bs {
		if b.n >= 0.99*total {
			return b.le * 1000
		}
	}
	return math.Inf(1)
}

// benchSlotAgentEnv, when set (to a slotAgentSpec in JSON), makes the
// test binary the slot agent (slotAgentMain): a process of its own, as a
// real agent is on its own host, so that the load generator's scheduling
// and garbage collection do not count against the slot latency.
const benchSlotAgentEnv = "KROLL_BENCH_SLOT_AGENT"

// slotAgentSpec is what the slot agent process does: pair k (acquire +
// release of Host's slot in DC) due at Start + k·Every, via URLs[k mod
// n], until End; a pair due while the previous one still runs is skipped.
type slotAgentSpec struct {
	URLs           []string
	Token          string
	Host, DC       string
	Start, End     time.Time
	Every, Timeout time.Duration
}

// slowPair is the slot pair duration from which the benchmark lists a
// pair (and, with KROLL_BENCH_KEEP, its wall time, node and calls).
const slowPair = 50 * time.Millisecond

// slotAgent is a running slot agent process and its output.
type slotAgent struct {
	cmd *exec.Cmd
	out io.Reader
}

// startSlotAgent starts the slot agent process for the load's schedule.
func (lg *heartbeatLoad) startSlotAgent(ctx context.Context, start, end time.Time) (*slotAgent, error) {
	spec := slotAgentSpec{Token: lg.token, Host: benchHost(0), DC: benchDC(0), Start: start, End: end, Every: lg.p.slotEvery, Timeout: lg.p.timeout}
	for _, nd := range lg.nodes {
		spec.URLs = append(spec.URLs, nd.url())
	}
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), benchSlotAgentEnv+"="+string(js))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("slot agent: %w", err)
	}
	return &slotAgent{cmd: cmd, out: out}, nil
}

// slotAgentMain is the slot agent process (see slotAgentSpec): one line
// per pair on stdout, "k skipped", "k ok <pair ns> <acquire ns> <start,
// Unix µs>" or "k err <why>".
func slotAgentMain(specJSON string) int {
	var spec slotAgentSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil || len(spec.URLs) == 0 {
		fmt.Fprintln(os.Stderr, "slot agent: bad spec:", err)
		return 2
	}
	var clients []*client.Client
	for _, u := range spec.URLs {
		cl, err := client.New(u, client.Options{Token: spec.Token})
		if err != nil {
			fmt.Fprintln(os.Stderr, "slot agent:", err)
			return 1
		}
		clients = append(clients, cl)
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	req := wire.SlotRequest{HostID: spec.Host, Datacenter: spec.DC}
	for k := 0; ; k++ {
		due := spec.Start.Add(time.Duration(k) * spec.Every)
		if !due.Before(spec.End) {
			return 0
		}
		time.Sleep(time.Until(due))
		if time.Since(due) >= spec.Every {
			fmt.Fprintf(out, "%d skipped\n", k)
			continue
		}
		t0 := time.Now()
		acq, err := slotPair(context.Background(), clients[k%len(clients)], req, spec.Timeout)
		if err != nil {
			fmt.Fprintf(out, "%d err %s\n", k, strings.ReplaceAll(err.Error(), "\n", " "))
		} else {
			fmt.Fprintf(out, "%d ok %d %d %d\n", k, time.Since(t0).Nanoseconds(), acq.Nanoseconds(), t0.UnixMicro())
		}
		out.Flush()
	}
}

// copyFile copies the file at from to to.
func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o644)
}

// benchDC is the name of the benchmark's datacenter d.
func benchDC(d int) string { return fmt.Sprintf("dc%03d", d) }

// msQuantile returns the q-quantile of lat in milliseconds; with no
// sample at all (nothing completed) it returns the whole window, the
// least the latency can have been.
func msQuantile(lat []time.Duration, q float64, window time.Duration) float64 {
	if len(lat) == 0 {
		return float64(window) / float64(time.Millisecond)
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	return float64(s[min(len(s)-1, int(q*float64(len(s))))]) / float64(time.Millisecond)
}

// echoField is a field the agent sends back as it received it: a field
// of wire.Heartbeat whose JSON name contains "version" and that
// wire.DesiredState also has (under the same name or without a
// "desired_" prefix). Today's wire has none; a coordinator that answers
// unchanged desired state without documents (issue 13) has one.
type echoField struct {
	index []int  // of the field in wire.Heartbeat
	key   []byte // `"name":` in the answer
}

// findEchoField returns the echo field of heartbeat type hb (a struct,
// wire.Heartbeat) given answer type ds (wire.DesiredState), or nil.
func findEchoField(hb, ds reflect.Type) *echoField {
	names := map[string]bool{}
	for i := range ds.NumField() {
		names[jsonName(ds.Field(i))] = true
	}
	for i := range hb.NumField() {
		f := hb.Field(i)
		name := jsonName(f)
		if !strings.Contains(name, "version") {
			continue
		}
		for _, answer := range []string{name, strings.TrimPrefix(name, "desired_")} {
			if names[answer] {
				return &echoField{index: f.Index, key: []byte(strconv.Quote(answer) + ":")}
			}
		}
	}
	return nil
}

// jsonName is the JSON name of a struct field.
func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "" {
		return f.Name
	}
	return name
}

// value extracts the field's value from a top-level JSON answer, nil when
// it is absent. It searches for the key rather than decoding the whole
// answer, which keeps the load generator cheap.
func (e *echoField) value(answer []byte) json.RawMessage {
	i := bytes.Index(answer, e.key)
	if i < 0 {
		return nil
	}
	var raw json.RawMessage
	if err := json.NewDecoder(bytes.NewReader(answer[i+len(e.key):])).Decode(&raw); err != nil {
		return nil
	}
	return raw
}

// set stores v into the field of *hb (a pointer to the heartbeat
// struct); a value the field cannot hold leaves it unset (not sent).
func (e *echoField) set(hb any, v json.RawMessage) {
	f := reflect.ValueOf(hb).Elem().FieldByIndex(e.index)
	if err := json.Unmarshal(v, f.Addr().Interface()); err != nil {
		f.SetZero()
	}
}

// agentState is what the load generator keeps of one agent.
type agentState struct {
	busy      atomic.Bool                     // a heartbeat is queued or out
	notBefore atomic.Int64                    // Retry-After: no heartbeat before (unix ns)
	version   atomic.Pointer[json.RawMessage] // echo field value of the last answer
	sent      atomic.Pointer[hbWire]          // what the agent sends; nil until its first heartbeat
}

// hbWire is what one agent sends, built by heartbeatLoad.encoded from its
// heartbeat with one echoed version, so that a heartbeat costs neither a
// JSON encoding nor a digest unless that version changed (the digest
// never does: it does not cover the desired version). Immutable once
// stored in agentState.sent: a send may use it while another send of the
// same agent replaces it.
//
// Memory (measured): the body (374 bytes, a 384-byte size class, without
// a desired version; 459 in 480 with one; no pointers, so never scanned
// by the garbage collector), this struct (64 bytes, 4 pointers) and the
// host id + digest string (48 bytes, no pointers): 496 to 592 bytes an
// agent, 95 to 113 MiB at 200,000 agents, of which 12 MiB (the structs)
// hold pointers. A version change replaces each agent's struct and body
// once (sharing the string); the old ones are garbage.
type hbWire struct {
	version *json.RawMessage // the echoed version body was built with (nil: none)
	body    []byte           // the heartbeat as json.Encoder writes it (newline-terminated)
	hdr     [2]string        // HostIDHeader and HeartbeatDigestHeader values, sliced in place into requests
}

// hostHdr and digestHdr are the HostIDHeader and HeartbeatDigestHeader
// values, as header value slices that share w's array (capacity 1: an
// Add to the request's header copies instead of writing into it).
func (w *hbWire) hostHdr() []string   { return w.hdr[0:1:1] }
func (w *hbWire) digestHdr() []string { return w.hdr[1:2:2] }

// heartbeatLoad is the load generator: N agents, one HTTP client with a
// large connection pool, a scheduler and a bounded pool of workers.
type heartbeatLoad struct {
	p      regionParams
	hc     *http.Client
	urls   []string // heartbeat URL of each node
	auth   string   // Authorization header
	echo   *echoField
	agents []agentState
	nodes  []*node
	token  string    // the agent token
	bufs   sync.Pool // *bytes.Buffer

	// Header values every heartbeat sends (Content-Type, Authorization),
	// set into requests as they are (http.Header values are only read
	// once set), so that a request does not allocate them.
	jsonType, authHdr []string
}

// Canonical header keys of the heartbeat's headers, so that send can set
// the header map's entries directly.
var (
	hdrContentType   = http.CanonicalHeaderKey("Content-Type")
	hdrAuthorization = http.CanonicalHeaderKey("Authorization")
	hdrHostID        = http.CanonicalHeaderKey(wire.HostIDHeader)
	hdrDigest        = http.CanonicalHeaderKey(wire.HeartbeatDigestHeader)
)

// newHeartbeatLoad prepares the load generator for cluster c.
func newHeartbeatLoad(c *cluster, p regionParams) *heartbeatLoad {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost, tr.MaxConnsPerHost = 0, p.workers, 0
	tr.DisableCompression = true
	tr.DialContext = (&net.Dialer{Timeout: p.timeout, KeepAlive: -1}).DialContext
	lg := &heartbeatLoad{
		p: p, hc: &http.Client{Transport: tr}, auth: "Bearer " + c.agentToken,
		echo: findEchoField(reflect.TypeFor[wire.Heartbeat](), reflect.TypeFor[wire.DesiredState]()), agents: make([]agentState, p.agents), nodes: c.nodes,
		bufs:     sync.Pool{New: func() any { return new(bytes.Buffer) }},
		jsonType: []string{"application/json"},
	}
	lg.authHdr = []string{lg.auth}
	lg.token = c.agentToken
	for _, nd := range c.nodes {
		lg.urls = append(lg.urls, nd.url()+wire.PathHeartbeat)
	}
	return lg
}

// heartbeat returns agent i's heartbeat: an idle host of datacenter
// i mod dcs on a Debian 6.1 kernel with two mitigation policies (one
// enforcing, one auditing), a gossip member and a full gossip view.
func (lg *heartbeatLoad) heartbeat(i int) wire.Heartbeat {
	return lg.heartbeatWith(i, lg.agents[i].version.Load())
}

// heartbeatWith is agent i's heartbeat echoing version v (nil: none).
func (lg *heartbeatLoad) heartbeatWith(i int, v *json.RawMessage) wire.Heartbeat {
	perDC := (lg.p.agents + lg.p.dcs - 1) / lg.p.dcs
	hb := wire.Heartbeat{
		HostID: benchHost(i), Datacenter: benchDC(i % lg.p.dcs),
		KernelLine: "6.1", Kernel: "6.1.0-47-amd64", Phase: wire.PhaseIdle,
		BootID: fmt.Sprintf("%08x-6b3c-4d2e-9f1a-%012x", i, i*2654435761%(1<<48)),
		Policies: []wire.PolicyStatus{
			{ID: "copy-fail-af-alg", Version: 3, State: wire.PolicyEnforcing},
			{ID: "userns-create-audit", Version: 1, State: wire.PolicyAuditing},
		},
		View:       &wire.DCView{Alive: perDC},
		GossipAddr: fmt.Sprintf("10.%d.%d.%d:7946", i>>16&0xff, i>>8&0xff, i&0xff),
	}
	if lg.echo != nil && v != nil {
		lg.echo.set(&hb, *v)
	}
	return hb
}

// encoded returns what agent i sends with its current echoed version: the
// one kept in agentState.sent when it was built with that version
// (pointers compared: keepVersion keeps a pointer while its value stays
// the same), else a new one, stored for the next heartbeat. Concurrent
// calls for the same agent are safe (each returns a complete hbWire, the
// last store wins), though run (the agent's busy flag) and register (one
// goroutine an agent) never make any.
func (lg *heartbeatLoad) encoded(i int) (*hbWire, error) {
	a := &lg.agents[i]
	v := a.version.Load()
	old := a.sent.Load()
	if old != nil && old.version == v {
		return old, nil
	}
	hb := lg.heartbeatWith(i, v)
	buf := lg.bufs.Get().(*bytes.Buffer)
	defer lg.bufs.Put(buf)
	buf.Reset()
	if err := json.NewEncoder(buf).Encode(hb); err != nil {
		return nil, err
	}
	w := &hbWire{version: v, body: bytes.Clone(buf.Bytes())}
	if old != nil {
		w.hdr = old.hdr // neither the host nor the digest covers the version
	} else {
		s := hb.HostID + wire.HeartbeatDigest(hb) // one allocation for both
		w.hdr = [2]string{s[:len(hb.HostID)], s[len(hb.HostID):]}
	}
	a.sent.Store(w)
	return w, nil
}

// benchHost is the host id of agent i.
func benchHost(i int) string { return fmt.Sprintf("h%06d", i) }

// hbOutcome is how one heartbeat ended.
type hbOutcome int

const (
	hbAnswered hbOutcome = iota
	hbShed
	hbFailed
)

// send sends agent i's heartbeat to its node and classifies the answer:
// 200 answered (the echo field is kept), 429 shed (Retry-After is kept),
// anything else or no answer within the timeout failed, with a
// description.
func (lg *heartbeatLoad) send(ctx context.Context, i int) (hbOutcome, string) {
	w, err := lg.encoded(i)
	if err != nil {
		return hbFailed, err.Error()
	}
	ctx, cancel := context.WithTimeout(ctx, lg.p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, lg.urls[i%len(lg.urls)], bytes.NewReader(w.body))
	if err != nil {
		return hbFailed, err.Error()
	}
	req.Header[hdrContentType] = lg.jsonType
	req.Header[hdrAuthorization] = lg.authHdr
	// What kroll-agent sends besides the body (a baseline coordinator
	// ignores them).
	req.Header[hdrHostID] = w.hostHdr()
	req.Header[hdrDigest] = w.digestHdr()
	resp, err := lg.hc.Do(req)
	if err != nil {
		return hbFailed, err.Error()
	}
	defer resp.Body.Close()
	buf := lg.bufs.Get().(*bytes.Buffer)
	defer lg.bufs.Put(buf)
	buf.Reset()
	if _, err := io.Copy(buf, io.LimitReader(resp.Body, client.MaxResponseSize)); err != nil {
		return hbFailed, fmt.Sprintf("read answer: %v", err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if lg.echo != nil {
			lg.keepVersion(i, lg.echo.value(buf.Bytes()))
		}
		return hbAnswered, ""
	case http.StatusTooManyRequests:
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			lg.agents[i].notBefore.Store(time.Now().Add(time.Duration(s) * time.Second).UnixNano())
		}
		return hbShed, ""
	default:
		return hbFailed, fmt.Sprintf("HTTP %d: %.200s", resp.StatusCode, bytes.TrimSpace(buf.Bytes()))
	}
}

// keepVersion stores the echo field's value of agent i's last answer:
// the agent's own copy stays when equal (so that its encoded heartbeat
// stays too), else it shares the previous agent's copy when equal (all
// agents of a datacenter usually have the same).
func (lg *heartbeatLoad) keepVersion(i int, v json.RawMessage) {
	if v == nil {
		lg.agents[i].version.Store(nil)
		return
	}
	if own := lg.agents[i].version.Load(); own != nil && bytes.Equal(*own, v) {
		return
	}
	if prev := lg.agents[(i+lg.p.agents-lg.p.dcs)%lg.p.agents].version.Load(); prev != nil && bytes.Equal(*prev, v) {
		lg.agents[i].version.Store(prev)
		return
	}
	v = slices.Clone(v)
	lg.agents[i].version.Store(&v)
}

// register registers every agent with its first heartbeat, p.registrar at
// a time, retrying shed and failed ones (up to 30 times each, with a
// growing pause).
func (lg *heartbeatLoad) register(ctx context.Context) error {
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range lg.p.registrar {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= lg.p.agents {
					return
				}
				for attempt := 1; ; attempt++ {
					out, why := lg.send(ctx, i)
					if out == hbAnswered {
						break
					}
					if attempt == 30 || ctx.Err() != nil {
						errOnce.Do(func() {
							firstErr = fmt.Errorf("register %s: %d attempts, last: %s", benchHost(i), attempt, why)
							cancel()
						})
						return
					}
					time.Sleep(min(time.Duration(attempt)*100*time.Millisecond, 2*time.Second))
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

// hbJob is one scheduled heartbeat.
type hbJob struct {
	agent int
	due   time.Time
}

// regionResult is what one row measured within the window.
type regionResult struct {
	answered, shed, failed, skipped, lgLate int64
	hbLat                                   []time.Duration
	slotFailed, slotSkipped                 int64
	slotLat                                 []time.Duration
	slowPairs                               []string  // the slowest pairs: when (s into the window), how long
	slowPairLog                             []string  // the same, with wall time, node, acquire and release
	slotServerP99                           float64   // p99 of one slot call inside the coordinators (ms, bucket bound)
	rssMB                                   []float64 // largest VmRSS of each node
	cpuNodes                                float64   // CPU cores the nodes used on average
	cpuLoad                                 float64   // CPU cores the load generator (this process) used
	errSamples                              []string
}

// window is the measurement window; events count by their scheduled time.
type window struct{ start, end time.Time }

func (w window) has(t time.Time) bool { return !t.Before(w.start) && t.Before(w.end) }

// run runs the load for the warm-up and the window and returns what the
// window saw.
func (lg *heartbeatLoad) run(ctx context.Context, c *cluster) (*regionResult, error) {
	start := time.Now()
	win := window{start: start.Add(lg.p.warmup), end: start.Add(lg.p.warmup + lg.p.window)}
	res := &regionResult{}
	var (
		answered, shed, failed, skipped, lgLate atomic.Int64
		mu                                      sync.Mutex // guards res.hbLat, res.errSamples
	)
	jobs := make(chan hbJob, lg.p.agents)
	var workers sync.WaitGroup
	for range lg.p.workers {
		workers.Go(func() {
			var lat []time.Duration
			var errs []string
			for j := range jobs {
				in := win.has(j.due)
				if !in && !j.due.Before(win.end) {
					lg.agents[j.agent].busy.Store(false) // past the window: not sent
					continue
				}
				if time.Since(j.due) > lg.p.timeout {
					// The agent's own request would have timed out by now.
					lg.agents[j.agent].busy.Store(false)
					if in {
						lgLate.Add(1)
						failed.Add(1)
					}
					continue
				}
				out, why := lg.send(ctx, j.agent)
				done := time.Now()
				lg.agents[j.agent].busy.Store(false)
				if !in {
					continue
				}
				switch out {
				case hbAnswered:
					answered.Add(1)
					lat = append(lat, done.Sub(j.due))
				case hbShed:
					shed.Add(1)
				default:
					failed.Add(1)
					if len(errs) < 2 {
						errs = append(errs, why)
					}
				}
			}
			mu.Lock()
			res.hbLat = append(res.hbLat, lat...)
			if len(res.errSamples) < 5 {
				res.errSamples = append(res.errSamples, errs...)
			}
			mu.Unlock()
		})
	}

	// The scheduler: agent i's heartbeats are due at start + i·interval/N
	// + k·interval.
	schedDone := make(chan struct{})
	go func() {
		defer close(schedDone)
		defer close(jobs)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		n, next, cycle := lg.p.agents, 0, 0
		offset := func(i int) time.Duration { return time.Duration(int64(lg.p.interval) * int64(i) / int64(n)) }
		for now := range tick.C {
			if now.After(win.end) {
				return
			}
			for {
				due := start.Add(time.Duration(cycle)*lg.p.interval + offset(next))
				if due.After(now) {
					break
				}
				a := &lg.agents[next]
				switch {
				case a.notBefore.Load() > due.UnixNano(), !a.busy.CompareAndSwap(false, true):
					if win.has(due) {
						skipped.Add(1)
					}
				default:
					jobs <- hbJob{agent: next, due: due} // never blocks: at most n jobs are busy
				}
				if next++; next == n {
					next, cycle = 0, cycle+1
				}
			}
		}
	}()

	// The slot agent: agent 0 acquires and releases its slot every
	// slotEvery, via node k mod 3 for pair k; a pair whose turn comes
	// while the previous one still runs is skipped.
	slotDone := make(chan struct{})
	agent, err := lg.startSlotAgent(ctx, start, win.end)
	if err != nil {
		return nil, err
	}
	go func() {
		defer close(slotDone)
		sc := bufio.NewScanner(agent.out)
		for sc.Scan() {
			var k int
			var what, detail string
			if n, _ := fmt.Sscanf(sc.Text(), "%d %s", &k, &what); n != 2 {
				continue
			}
			_, detail, _ = strings.Cut(strings.TrimPrefix(sc.Text(), fmt.Sprintf("%d %s", k, what)), " ")
			due := start.Add(time.Duration(k) * lg.p.slotEvery)
			if !win.has(due) {
				continue
			}
			switch what {
			case "skipped":
				res.slotSkipped++
			case "err":
				res.slotFailed++
				if res.slotFailed <= 2 {
					mu.Lock()
					res.errSamples = append(res.errSamples, "slot: "+detail)
					mu.Unlock()
				}
			case "ok":
				var ns, acq, startUS int64
				fmt.Sscan(detail, &ns, &acq, &startUS)
				took := time.Duration(ns)
				res.slotLat = append(res.slotLat, took)
				if took > slowPair {
					res.slowPairs = append(res.slowPairs, fmt.Sprintf("%.1fs:%s", due.Sub(win.start).Seconds(), took.Round(time.Millisecond)))
					// Wall time, node, acquire and release: to be put
					// beside the nodes' logs ("slow state lock", "slow
					// apply") and GODEBUG=gctrace=1 lines.
					res.slowPairLog = append(res.slowPairLog, fmt.Sprintf("%s via %s: pair %s (acquire %s, release %s)",
						time.UnixMicro(startUS).UTC().Format("15:04:05.000"), c.nodes[k%len(c.nodes)].id,
						took.Round(time.Millisecond), time.Duration(acq).Round(time.Millisecond), (took-time.Duration(acq)).Round(time.Millisecond)))
				}
			}
		}
		if err := agent.cmd.Wait(); err != nil {
			mu.Lock()
			res.errSamples = append(res.errSamples, "slot agent: "+err.Error())
			mu.Unlock()
		}
	}()

	// Resident sets every second of the window, CPU over the window.
	res.rssMB = make([]float64, len(c.nodes))
	time.Sleep(time.Until(win.start))
	slot0 := slotServerBuckets(c)
	cpu0, err := lg.nodesCPU()
	if err != nil {
		return nil, err
	}
	self0, err := processCPU(os.Getpid())
	if err != nil {
		return nil, err
	}
	for t := time.Now(); t.Before(win.end); t = time.Now() {
		for i, nd := range c.nodes {
			mb, err := vmRSSMB(nd.cmd.Process.Pid)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", nd.id, err)
			}
			res.rssMB[i] = max(res.rssMB[i], mb)
		}
		time.Sleep(min(time.Second, time.Until(win.end)))
	}
	cpu1, err := lg.nodesCPU()
	if err != nil {
		return nil, err
	}
	self1, err := processCPU(os.Getpid())
	if err != nil {
		return nil, err
	}
	res.cpuNodes = (cpu1 - cpu0).Seconds() / lg.p.window.Seconds()
	res.slotServerP99 = slotServerP99(slot0, slotServerBuckets(c))
	res.cpuLoad = (self1 - self0).Seconds() / lg.p.window.Seconds()

	<-schedDone
	<-slotDone
	workers.Wait()
	res.answered, res.shed, res.failed, res.skipped, res.lgLate = answered.Load(), shed.Load(), failed.Load(), skipped.Load(), lgLate.Load()
	return res, nil
}

// slotPair acquires req's slot through cl and releases it; acquire is how
// long the acquire took.
func slotPair(ctx context.Context, cl *client.Client, req wire.SlotRequest, timeout time.Duration) (acquire time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t0 := time.Now()
	s, err := cl.AcquireSlot(ctx, req)
	acquire = time.Since(t0)
	if err != nil {
		return acquire, fmt.Errorf("acquire: %w", err)
	}
	req.Token = s.Token
	if err := cl.AgentRelease(ctx, req); err != nil {
		return acquire, fmt.Errorf("release: %w", err)
	}
	return acquire, nil
}

// nodesCPU returns the CPU time (user + system) the nodes used so far.
func (lg *heartbeatLoad) nodesCPU() (time.Duration, error) {
	var total time.Duration
	for _, nd := range lg.nodes {
		d, err := processCPU(nd.cmd.Process.Pid)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", nd.id, err)
		}
		total += d
	}
	return total, nil
}

// vmRSSMB reads a process's resident set size in MiB.
func vmRSSMB(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", rest, err)
			}
			return kb / 1024, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no VmRSS in /proc/PID/status")
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times on Linux.
const clockTicks = 100

// processCPU reads a process's user + system CPU time from /proc/PID/stat.
func processCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces) start at
	// field 3; utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc/PID/stat")
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 13 {
		return 0, errors.New("short /proc/PID/stat")
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/PID/stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}
