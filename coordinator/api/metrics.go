package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kroll-dev/kroll/coordinator/fsm"
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
}

// NewMetrics creates the metrics in a new registry (reg is ignored when
// nil; pass one to expose them elsewhere too).
func NewMetrics(reg *prometheus.Registry) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m := &Metrics{
		reg: reg,
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
	m.reg.MustRegister(&storeCollector{st: st})
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

// storeCollector reads gauges from the store at scrape time.
type storeCollector struct{ st Store }

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRaftState, descRaftIndex, descRaftTerm, descSlotsHeld, descSlotsLost, descDCPaused, descHosts} {
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
	c.st.FSM().View(func(s *fsm.State) {
		hosts := map[string]int{}
		for _, h := range s.Hosts {
			hosts[h.Datacenter]++
		}
		for name, dc := range s.Datacenters {
			lost := 0
			for _, sl := range dc.Slots {
				if sl.Lost {
					lost++
				}
			}
			paused := 0.0
			if dc.Policy.Paused {
				paused = 1
			}
			ch <- prometheus.MustNewConstMetric(descSlotsHeld, prometheus.GaugeValue, float64(len(dc.Slots)), name)
			ch <- prometheus.MustNewConstMetric(descSlotsLost, prometheus.GaugeValue, float64(lost), name)
			ch <- prometheus.MustNewConstMetric(descDCPaused, prometheus.GaugeValue, paused, name)
		}
		for name, n := range hosts {
			ch <- prometheus.MustNewConstMetric(descHosts, prometheus.GaugeValue, float64(n), name)
		}
	})
}
