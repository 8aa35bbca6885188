package gossip

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Drop reasons, the "reason" label of kroll_gossip_messages_dropped_total.
const (
	// ReasonOversize: the message exceeds MaxMessageSize.
	ReasonOversize = "oversize"
	// ReasonMalformed: the message could not be decoded.
	ReasonMalformed = "malformed"
	// ReasonUnknownKind: the message's Kind is not KindPolicy.
	ReasonUnknownKind = "unknown_kind"
	// ReasonDuplicate: this (ID, Version) was already seen.
	ReasonDuplicate = "duplicate"
	// ReasonStale: a newer version of the ID was already seen.
	ReasonStale = "stale"
	// ReasonRejected: Config.Accept returned an error that is not a
	// *RejectError (which names its own reason).
	ReasonRejected = "rejected"
	// ReasonBadState: a push-pull state that could not be decoded or was
	// too large (counted once per state).
	ReasonBadState = "bad_state"
)

// Delivery paths, the "via" label of kroll_gossip_messages_delivered_total.
const (
	viaGossip   = "gossip"
	viaPushPull = "pushpull"
)

// metrics are a pool's counters. They are always kept (tests read them);
// they are exported to Prometheus when Config.Registerer is set.
type metrics struct {
	pool *Pool

	mu        sync.Mutex
	dropped   map[string]uint64
	delivered map[string]uint64

	membersDesc   *prometheus.Desc
	queueDesc     *prometheus.Desc
	droppedDesc   *prometheus.Desc
	deliveredDesc *prometheus.Desc
	sentDesc      *prometheus.Desc
}

func newMetrics(p *Pool) *metrics {
	return &metrics{
		pool:      p,
		dropped:   map[string]uint64{},
		delivered: map[string]uint64{},
		membersDesc: prometheus.NewDesc("kroll_gossip_members",
			"Members of the datacenter's gossip pool as this node sees them, by state (alive, suspect, dead, left).",
			[]string{"state"}, nil),
		queueDesc: prometheus.NewDesc("kroll_gossip_broadcast_queue_depth",
			"Messages waiting in the broadcast queues for (re)transmission.", nil, nil),
		droppedDesc: prometheus.NewDesc("kroll_gossip_messages_dropped_total",
			"Received messages that were not delivered, by reason.", []string{"reason"}, nil),
		deliveredDesc: prometheus.NewDesc("kroll_gossip_messages_delivered_total",
			"Messages accepted and handed to the agent, by path (gossip, pushpull).", []string{"via"}, nil),
		sentDesc: prometheus.NewDesc("kroll_gossip_sent_bytes_total",
			"Bytes this node sent to the pool, by transport (packet = UDP, stream = TCP).", []string{"transport"}, nil),
	}
}

func (m *metrics) drop(reason string) {
	m.mu.Lock()
	m.dropped[reason]++
	m.mu.Unlock()
}

func (m *metrics) deliver(via string) {
	m.mu.Lock()
	m.delivered[via]++
	m.mu.Unlock()
}

func (m *metrics) droppedCount(reason string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dropped[reason]
}

func (m *metrics) deliveredCount(via string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.delivered[via]
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.membersDesc
	ch <- m.queueDesc
	ch <- m.droppedDesc
	ch <- m.deliveredDesc
	ch <- m.sentDesc
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	v := m.pool.View()
	for state, n := range map[string]int{
		StateAlive: v.Alive, StateSuspect: v.Suspect, StateDead: v.Dead, StateLeft: v.Left,
	} {
		ch <- prometheus.MustNewConstMetric(m.membersDesc, prometheus.GaugeValue, float64(n), state)
	}
	ch <- prometheus.MustNewConstMetric(m.queueDesc, prometheus.GaugeValue, float64(m.pool.QueueDepth()))
	m.mu.Lock()
	for reason, n := range m.dropped {
		ch <- prometheus.MustNewConstMetric(m.droppedDesc, prometheus.CounterValue, float64(n), reason)
	}
	for via, n := range m.delivered {
		ch <- prometheus.MustNewConstMetric(m.deliveredDesc, prometheus.CounterValue, float64(n), via)
	}
	m.mu.Unlock()
	packet, stream := m.pool.transport.sentBytes()
	ch <- prometheus.MustNewConstMetric(m.sentDesc, prometheus.CounterValue, float64(packet), "packet")
	ch <- prometheus.MustNewConstMetric(m.sentDesc, prometheus.CounterValue, float64(stream), "stream")
}
