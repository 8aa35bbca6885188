package store

import (
	"errors"
	"fmt"
	"time"

	gometrics "github.com/hashicorp/go-metrics"
	gmprom "github.com/hashicorp/go-metrics/prometheus"
	wal "github.com/hashicorp/raft-wal"
	"github.com/prometheus/client_golang/prometheus"
)

// RaftMetricsPrefix starts the names of hashicorp/raft's own metrics as
// exported to Prometheus: raft's key "raft.commitTime" is
// kroll_raft_commitTime (a summary; raft's timers are in milliseconds).
const RaftMetricsPrefix = "kroll"

// raftMetricsExpiry drops a hashicorp/raft metric nobody updated for this
// long (e.g. the leader-only ones after a node lost the leadership).
const raftMetricsExpiry = 5 * time.Minute

// exportRaftMetrics registers hashicorp/raft's metrics on reg. Raft reports
// to go-metrics' process-wide instance, which this replaces: with several
// nodes in one process (tests), raft's metrics go to the registry of the
// last one opened. Registering again on the same registry reuses its sink.
func exportRaftMetrics(reg prometheus.Registerer) error {
	sink, err := gmprom.NewPrometheusSinkFrom(gmprom.PrometheusOpts{
		Registerer: reg, Expiration: raftMetricsExpiry, Name: "kroll_raft_gometrics_sink",
	})
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, ok := are.ExistingCollector.(*gmprom.PrometheusSink); ok {
			sink, err = existing, nil
		}
	}
	if err != nil {
		return fmt.Errorf("store: raft metrics: %w", err)
	}
	conf := gometrics.DefaultConfig(RaftMetricsPrefix)
	conf.EnableHostname = false
	conf.EnableRuntimeMetrics = false
	if _, err := gometrics.NewGlobal(conf, sink); err != nil {
		return fmt.Errorf("store: raft metrics: %w", err)
	}
	return nil
}

// walMetrics exports raft-wal's counters and gauges (wal.MetricDefinitions)
// as kroll_raft_wal_<name>_total and kroll_raft_wal_<name>. It implements
// raft-wal's metrics.Collector; names it does not define are ignored.
type walMetrics struct {
	counters map[string]prometheus.Counter
	gauges   map[string]prometheus.Gauge
}

// newWALMetrics creates the WAL's metrics on reg (reusing those a node
// opened earlier in the process registered there).
func newWALMetrics(reg prometheus.Registerer) (*walMetrics, error) {
	m := &walMetrics{counters: map[string]prometheus.Counter{}, gauges: map[string]prometheus.Gauge{}}
	for _, d := range wal.MetricDefinitions.Counters {
		c, err := register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "kroll_raft_wal_" + d.Name + "_total", Help: "raft-wal: " + d.Desc}))
		if err != nil {
			return nil, err
		}
		m.counters[d.Name] = c
	}
	for _, d := range wal.MetricDefinitions.Gauges {
		g, err := register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "kroll_raft_wal_" + d.Name, Help: "raft-wal: " + d.Desc}))
		if err != nil {
			return nil, err
		}
		m.gauges[d.Name] = g
	}
	return m, nil
}

// register registers c on reg, or returns the equal collector registered
// before.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	if err != nil {
		return c, fmt.Errorf("store: wal metrics: %w", err)
	}
	return c, nil
}

// IncrementCounter implements raft-wal's metrics.Collector.
func (m *walMetrics) IncrementCounter(name string, delta uint64) {
	if c := m.counters[name]; c != nil {
		c.Add(float64(delta))
	}
}

// SetGauge implements raft-wal's metrics.Collector.
func (m *walMetrics) SetGauge(name string, val uint64) {
	if g := m.gauges[name]; g != nil {
		g.Set(float64(val))
	}
}
