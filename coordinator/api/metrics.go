package api

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/buildmetrics"
)

// Metrics are the coordinator's Prometheus metrics.
type Metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	decisions *prometheus.CounterVec
	commit    prometheus.Histogram
	shed      *prometheus.CounterVec
	beats     *prometheus.CounterVec
	// fleet caches the fleet gauges between scrapes.
	fleet fleetCache
}

// NewMetrics creates the metrics in reg, or, when reg is nil, in a new
// registry with the Go runtime, process and kroll_build_info collectors.
func NewMetrics(reg *prometheus.Registry) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
			buildmetrics.Collector("kroll-coordinator"))
	}
	m := &Metrics{
		reg:   reg,
		fleet: fleetCache{ttl: fleetStatsTTL},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kroll_api_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kroll_api_request_duration_seconds", Help: "HTTP request latency by route (includes Raft commit for writes).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"route"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kroll_slot_decisions_total", Help: "Slot requests by outcome: granted, already_held or the denial reason.",
		}, []string{"reason"}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kroll_raft_commit_seconds", Help: "Time from proposing a command on the leader to its commit and apply (includes the fsync).",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16),
		}),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kroll_api_shed_total", Help: "Requests answered 429 overloaded by admission class (heartbeat, priority).",
		}, []string{"class"}),
	}
	m.beats = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kroll_heartbeats_total", Help: "Heartbeats answered, by path: local (no durable change, answered from this node's state) or raft (proposed).",
	}, []string{"path"})
	reg.MustRegister(m.requests, m.latency, m.decisions, m.commit, m.shed, m.beats)
	return m
}

// Registry returns the registry /metrics serves, to register more
// collectors on (e.g. store.Config.Registerer for Raft's own metrics).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func (m *Metrics) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		m.requests.WithLabelValues(route, strconv.Itoa(rec.code)).Inc()
		m.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

// heartbeat counts an answered heartbeat.
func (m *Metrics) heartbeat(local bool) {
	path := "raft"
	if local {
		path = "local"
	}
	m.beats.WithLabelValues(path).Inc()
}

// applied counts slot decisions.
func (m *Metrics) applied(typ fsm.Type, res fsm.Result) {
	if typ == fsm.TypeAcquire && res.Reason != "" {
		m.decisions.WithLabelValues(res.Reason).Inc()
	}
}

// Handler serves /metrics, including Raft and slot gauges read from store
// at scrape time.
func (m *Metrics) Handler(st Store) http.Handler {
	m.reg.MustRegister(&storeCollector{st: st, fleet: &m.fleet})
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

var (
	descRaftState = prometheus.NewDesc("kroll_raft_state", "1 for this node's current Raft state.", []string{"state"}, nil)
	descRaftIndex = prometheus.NewDesc("kroll_raft_index", "Raft indexes (commit, applied, last_log).", []string{"index"}, nil)
	descRaftTerm  = prometheus.NewDesc("kroll_raft_term", "Current Raft term.", nil, nil)
	descSlotsHeld = prometheus.NewDesc("kroll_slots_held", "Reboot slots held per datacenter.", []string{"datacenter"}, nil)
	descSlotsLost = prometheus.NewDesc("kroll_slots_lost", "Slots of hosts lost mid-reboot per datacenter.", []string{"datacenter"}, nil)
	descDCPaused  = prometheus.NewDesc("kroll_datacenter_paused", "1 when the datacenter is paused.", []string{"datacenter"}, nil)
	descHosts     = prometheus.NewDesc("kroll_hosts", "Registered hosts per datacenter.", []string{"datacenter"}, nil)

	descHostsPhase     = prometheus.NewDesc("kroll_hosts_phase", "Registered hosts per datacenter and lifecycle phase (phases without hosts are left out; \"unknown\": none reported).", []string{"datacenter", "phase"}, nil)
	descHostsKernel    = prometheus.NewDesc("kroll_hosts_kernel", "Registered hosts per datacenter, kernel line and running kernel.", []string{"datacenter", "kernel_line", "kernel"}, nil)
	descHostsSilent    = prometheus.NewDesc("kroll_hosts_silent", "Agent hosts per datacenter the coordinators have not heard from within the liveness window (alive_within); FleetLock-only hosts are not counted.", []string{"datacenter"}, nil)
	descHostsUnhealthy = prometheus.NewDesc("kroll_hosts_unhealthy", "Hosts per datacenter whose last health report after a boot failed.", []string{"datacenter"}, nil)
	descRolloutState   = prometheus.NewDesc("kroll_rollout_state", "1 for the state of the newest rollout of each kernel line, 0 for the other states.", []string{"kernel_line", "rollout", "release", "state"}, nil)
	descRolloutWaves   = prometheus.NewDesc("kroll_rollout_waves", "Waves of the newest rollout of each kernel line.", []string{"kernel_line", "rollout"}, nil)
	descRolloutDone    = prometheus.NewDesc("kroll_rollout_waves_completed", "Completed waves of the newest rollout of each kernel line.", []string{"kernel_line", "rollout"}, nil)
	descPolicyTargeted = prometheus.NewDesc("kroll_policy_hosts_targeted", "Alive agent hosts in the datacenters a mitigation policy (not retired) targets.", []string{"policy"}, nil)
	descPolicyInForce  = prometheus.NewDesc("kroll_policy_hosts_in_force", "Of kroll_policy_hosts_targeted, the hosts reporting the policy's current version enforcing or auditing.", []string{"policy"}, nil)
	descPolicyPushed   = prometheus.NewDesc("kroll_policy_pushed_timestamp_seconds", "Unix time the current version of a mitigation policy (not retired) was pushed.", []string{"policy"}, nil)

	descClockStep  = prometheus.NewDesc("kroll_coordinator_clock_step_seconds", "Last observed offset of this node's wall clock from the time it stamps commands with (positive: wall ahead); command times follow the monotonic clock.", nil, nil)
	descClockSteps = prometheus.NewDesc("kroll_coordinator_clock_steps_total", "Wall-clock steps observed while leading (offset from the stamped time changed beyond the threshold).", nil, nil)
)

var descFSMHalted = prometheus.NewDesc("kroll_coordinator_fsm_halted", "1 when this node's state machine halted: it met a command or snapshot it cannot apply (unknown type or format version, undecodable) and refuses every write; /readyz says why.", nil, nil)

// halter is implemented by a store whose state machine can halt
// (coordinator/store).
type halter interface {
	Halted() error
}

// clockStepper is implemented by a store that stamps commands from a
// monotonic clock and watches the wall clock (coordinator/store).
type clockStepper interface {
	ClockSteps() (offset time.Duration, steps uint64)
}

// fleetStatsTTL is how long a scrape's fleet gauges are served again:
// counting the fleet walks every host under the state's read lock, and
// /metrics is unauthenticated, so a loop of scrapes costs one count per
// fleetStatsTTL.
const fleetStatsTTL = 10 * time.Second

// storeCollector reads gauges from the store at scrape time.
type storeCollector struct {
	st    Store
	fleet *fleetCache
}

// fleetCache holds the last fleet count for ttl (fleetStatsTTL).
// Concurrent scrapes that find it stale wait for one count (the mutex is
// held while counting) rather than each counting.
type fleetCache struct {
	mu    sync.Mutex
	ttl   time.Duration
	at    time.Time
	stats fsm.FleetStats
	valid bool
	// computed counts the counts taken (tests).
	computed int
}

// get returns the cached count, or count(now) when it is older than the
// ttl at now. The returned stats are shared: read them only.
func (c *fleetCache) get(now time.Time, count func(time.Time) fsm.FleetStats) fsm.FleetStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.valid && now.Sub(c.at) < c.ttl && !now.Before(c.at) {
		return c.stats
	}
	c.stats, c.at, c.valid = count(now), now, true
	c.computed++
	return c.stats
}

// setTTL changes the ttl (tests: 0 counts at every scrape).
func (c *fleetCache) setTTL(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ttl = d
}

// computations returns how many counts were taken.
func (c *fleetCache) computations() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.computed
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRaftState, descRaftIndex, descRaftTerm, descSlotsHeld, descSlotsLost, descDCPaused, descHosts,
		descHostsPhase, descHostsKernel, descHostsSilent, descHostsUnhealthy, descRolloutState, descRolloutWaves, descRolloutDone,
		descPolicyTargeted, descPolicyInForce, descPolicyPushed} {
		ch <- d
	}
	if _, ok := c.st.(clockStepper); ok {
		ch <- descClockStep
		ch <- descClockSteps
	}
	if _, ok := c.st.(halter); ok {
		ch <- descFSMHalted
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	stats := c.st.Stats()
	ch <- prometheus.MustNewConstMetric(descRaftState, prometheus.GaugeValue, 1, stats["state"])
	for _, k := range []string{"commit_index", "applied_index", "last_log_index"} {
		if v, err := strconv.ParseFloat(stats[k], 64); err == nil {
			ch <- prometheus.MustNewConstMetric(descRaftIndex, prometheus.GaugeValue, v, k)
		}
	}
	if v, err := strconv.ParseFloat(stats["term"], 64); err == nil {
		ch <- prometheus.MustNewConstMetric(descRaftTerm, prometheus.GaugeValue, v)
	}
	if h, ok := c.st.(halter); ok {
		v := 0.0
		if h.Halted() != nil {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descFSMHalted, prometheus.GaugeValue, v)
	}
	if cs, ok := c.st.(clockStepper); ok {
		off, n := cs.ClockSteps()
		ch <- prometheus.MustNewConstMetric(descClockStep, prometheus.GaugeValue, off.Seconds())
		ch <- prometheus.MustNewConstMetric(descClockSteps, prometheus.CounterValue, float64(n))
	}
	fs := c.fleet.get(time.Now(), func(now time.Time) fsm.FleetStats {
		alive := c.st.Timing().AliveWithin
		f := c.st.FSM()
		return fsm.CountFleet(func(fn func(*fsm.State)) { f.ViewAs("metrics", fn) }, now, alive)
	})
	gauge := func(d *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	for name, d := range fs.Datacenters {
		gauge(descSlotsHeld, d.SlotsHeld, name)
		gauge(descSlotsLost, d.SlotsLost, name)
		gauge(descDCPaused, b2i(d.Paused), name)
		gauge(descHosts, d.Hosts, name)
		gauge(descHostsSilent, d.Silent, name)
		gauge(descHostsUnhealthy, d.Unhealthy, name)
		for phase, n := range d.Phases {
			gauge(descHostsPhase, n, name, phase)
		}
	}
	for k, n := range fs.Kernels {
		gauge(descHostsKernel, n, k.Datacenter, k.Line, k.Kernel)
	}
	for _, r := range fs.Rollouts {
		for _, state := range fsm.RolloutStates() {
			gauge(descRolloutState, b2i(r.State == state), r.Line, r.ID, r.Release, state)
		}
		gauge(descRolloutWaves, r.Waves, r.Line, r.ID)
		gauge(descRolloutDone, r.WavesCompleted, r.Line, r.ID)
	}
	for _, p := range fs.Policies {
		gauge(descPolicyTargeted, p.Targeted, p.ID)
		gauge(descPolicyInForce, p.InForce, p.ID)
		ch <- prometheus.MustNewConstMetric(descPolicyPushed, prometheus.GaugeValue, float64(p.Pushed.UnixNano())/1e9, p.ID)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
