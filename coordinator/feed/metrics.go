package feed

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the feed pollers' counters, by feed; one set serves every
// feed of a coordinator.
type Metrics struct {
	polls      *prometheus.CounterVec
	errors     *prometheus.CounterVec
	candidates *prometheus.CounterVec
	refused    *prometheus.CounterVec
}

// NewMetrics creates the counters and registers them in reg (none when
// reg is nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kroll_feed_polls_total", Help: "Feed polls completed by the leader, by feed (unchanged indexes included).",
		}, []string{"feed"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kroll_feed_errors_total", Help: "Feed polls that failed (fetch, parse or apply), by feed; retried with backoff.",
		}, []string{"feed"}),
		candidates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kroll_feed_candidates_total", Help: "Builds a feed turned into candidate releases, by feed.",
		}, []string{"feed"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kroll_feed_refused_total", Help: "Builds a feed refused, by feed and status (unsigned, bad-signature, mismatch, invalid, conflict).",
		}, []string{"feed", "status"}),
	}
	if reg != nil {
		reg.MustRegister(m.polls, m.errors, m.candidates, m.refused)
	}
	return m
}
