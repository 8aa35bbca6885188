package store

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
)

// Liveness is soft state (see package fsm): every node records in memory
// when it heard a host (Heard); followers hand their records to the leader
// about once a second (TakeHeard, Aggregate; coordinator/api carries them
// over a peer-authenticated route), and the leader keeps the last time it
// heard each host. Silence reaches the replicated state only through the
// leader's batched fsm.MarkSilent for registered agents not heard for
// AliveWithin — never within the liveness grace of its term: a new leader
// treats every registered host as heard when its term starts.

// markSilentBatch bounds the hosts one MarkSilent command names.
const markSilentBatch = 2000

// liveness is a node's in-memory liveness table.
type liveness struct {
	mu sync.Mutex
	// pending holds the hosts heard on this node since the last drain
	// (by this node's clock).
	pending map[string]time.Time
	// heard is the leader's table: the last time any node heard a host.
	heard map[string]time.Time
	// term is the term heard belongs to; termStart is when this node
	// first saw itself lead it.
	term      uint64
	termStart time.Time
	// settled: the term's first pass after its grace was applied.
	settled bool
}

// note records host heard at at in m, keeping the later time.
func note(m map[string]time.Time, host string, at time.Time) {
	if old, ok := m[host]; !ok || at.After(old) {
		m[host] = at
	}
}

// Heard records that host was heard from at at (this node's clock).
func (s *Store) Heard(host string, at time.Time) {
	s.lv.mu.Lock()
	defer s.lv.mu.Unlock()
	if s.lv.pending == nil {
		s.lv.pending = map[string]time.Time{}
	}
	note(s.lv.pending, host, at)
}

// TakeHeard returns the hosts heard on this node since the last call and
// forgets them; a follower sends them to the leader (ReturnHeard when it
// could not).
func (s *Store) TakeHeard() map[string]time.Time {
	s.lv.mu.Lock()
	defer s.lv.mu.Unlock()
	out := s.lv.pending
	s.lv.pending = nil
	return out
}

// ReturnHeard puts back records TakeHeard returned that did not reach the
// leader.
func (s *Store) ReturnHeard(batch map[string]time.Time) {
	s.lv.mu.Lock()
	defer s.lv.mu.Unlock()
	if s.lv.pending == nil {
		s.lv.pending = make(map[string]time.Time, len(batch))
	}
	for h, at := range batch {
		note(s.lv.pending, h, at)
	}
}

// Aggregate records a follower's liveness records on the leader; a
// follower returns ErrNotLeader.
func (s *Store) Aggregate(batch map[string]time.Time) error {
	if !s.IsLeader() {
		return ErrNotLeader
	}
	s.lv.mu.Lock()
	defer s.lv.mu.Unlock()
	if s.lv.heard == nil {
		s.lv.heard = make(map[string]time.Time, len(batch))
	}
	for h, at := range batch {
		note(s.lv.heard, h, at)
	}
	return nil
}

// LivenessGrace is how long after its term starts the leader marks no
// host silent: cfg.Timing.LivenessGrace (at least AliveWithin and three
// heartbeat intervals, see Config.defaults).
func (s *Store) LivenessGrace() time.Duration { return s.cfg.Timing.LivenessGrace }

// silentHosts returns the registered agent hosts the leader has not heard
// from for AliveWithin at now, none within the grace of its term, and the
// term to settle (MarkSilent.Term) when this is the term's first pass
// after its grace (0 otherwise). It merges this node's own records first
// and drops records of hosts no longer registered.
//
// It goes through the hosts one datacenter at a time, each under a short
// View: one View over a whole region's hosts (100,000 map lookups, tens of
// milliseconds on a busy node, every LivenessInterval) kept every write —
// slot acquires and releases included — waiting behind it, and every
// heartbeat answer behind the waiting write. A host that moves between
// datacenters during a pass may be seen twice (listed once) or not at all
// (seen on the next pass).
func (s *Store) silentHosts(now time.Time) (silent []string, settle uint64) {
	term := s.raft.CurrentTerm()
	s.lv.mu.Lock()
	if s.lv.heard == nil || s.lv.term != term {
		// A new term: every registered host counts as heard now.
		s.lv.heard, s.lv.term, s.lv.termStart, s.lv.settled = map[string]time.Time{}, term, now, false
	}
	for h, at := range s.lv.pending {
		note(s.lv.heard, h, at)
	}
	s.lv.pending = nil
	termStart := s.lv.termStart
	if now.Sub(termStart) < s.cfg.Timing.LivenessGrace {
		s.lv.mu.Unlock()
		return nil, 0
	}
	if !s.lv.settled {
		settle = term
	}
	heard := s.lv.heard
	s.lv.mu.Unlock()

	var (
		dcs   []string
		hosts int
	)
	s.fsm.ViewAs(lockOpLiveness, func(st *fsm.State) { dcs, hosts = st.HostDatacenters(), len(st.Hosts) })
	aliveWithin := s.cfg.Timing.AliveWithin
	for _, dc := range dcs {
		// heard is only ever replaced by this goroutine (silentHosts,
		// dropLiveness); lv.mu guards its entries against Heard and
		// Aggregate.
		s.lv.mu.Lock()
		s.fsm.ViewAs(lockOpLiveness, func(st *fsm.State) {
			for id, h := range st.HostsIn(dc) {
				if h.FleetLock || h.Silent {
					continue
				}
				last, ok := heard[id]
				if !ok || last.Before(termStart) {
					last = termStart
				}
				if now.Sub(last) > aliveWithin {
					silent = append(silent, id)
				}
			}
		})
		s.lv.mu.Unlock()
	}
	s.pruneHeard(heard, hosts)
	slices.Sort(silent)
	return slices.Compact(silent), settle
}

// pruneHeardBatch bounds the records pruneHeard checks under one View.
const pruneHeardBatch = 2000

// pruneHeard drops the leader's records of hosts no longer registered
// when it holds more records than there are hosts, checking them in
// batches (short Views, as silentHosts).
func (s *Store) pruneHeard(heard map[string]time.Time, hosts int) {
	s.lv.mu.Lock()
	if len(heard) <= hosts {
		s.lv.mu.Unlock()
		return
	}
	ids := make([]string, 0, len(heard))
	for h := range heard {
		ids = append(ids, h)
	}
	s.lv.mu.Unlock()
	for len(ids) > 0 {
		batch := ids[:min(len(ids), pruneHeardBatch)]
		ids = ids[len(batch):]
		s.lv.mu.Lock()
		s.fsm.ViewAs(lockOpLiveness, func(st *fsm.State) {
			for _, h := range batch {
				if st.Hosts[h] == nil {
					delete(heard, h)
				}
			}
		})
		s.lv.mu.Unlock()
	}
}

// dropLiveness forgets the leader's table (this node does not lead).
func (s *Store) dropLiveness() {
	s.lv.mu.Lock()
	defer s.lv.mu.Unlock()
	s.lv.heard, s.lv.term = nil, 0
}

// markSilent proposes MarkSilent for the hosts silentHosts finds, in
// batches (leader only).
func (s *Store) markSilent(ctx context.Context) {
	if !s.IsLeader() {
		s.dropLiveness()
		return
	}
	silent, settle := s.silentHosts(time.Now())
	for len(silent) > 0 {
		n := min(len(silent), markSilentBatch)
		if _, err := s.Apply(ctx, fsm.TypeMarkSilent, fsm.MarkSilent{Hosts: silent[:n], Timing: s.cfg.Timing}); err != nil {
			if !errors.Is(err, ErrNotLeader) {
				s.cfg.Logger.Warn("mark silent", "err", err)
			}
			return
		}
		s.cfg.Logger.Info("marked hosts silent", "hosts", n)
		silent = silent[n:]
	}
	if settle != 0 {
		// The term's first pass after its grace is done: settle it, so
		// that soaking waves stop holding for hosts not heard this term.
		if _, err := s.Apply(ctx, fsm.TypeMarkSilent, fsm.MarkSilent{Term: settle, Timing: s.cfg.Timing}); err != nil {
			if !errors.Is(err, ErrNotLeader) {
				s.cfg.Logger.Warn("settle liveness", "err", err)
			}
			return
		}
		s.lv.mu.Lock()
		if s.lv.term == settle {
			s.lv.settled = true
		}
		s.lv.mu.Unlock()
	}
}
