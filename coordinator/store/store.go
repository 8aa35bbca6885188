// Package store runs the coordinator's Raft node: hashicorp/raft with a
// durable write-ahead log (raft-wal, fsync on every append), file
// snapshots, static bootstrap from --peers, and the leader's duties
// (stamping commands with its clock, replicating lease expiry as Tick
// commands, announcing its HTTP address). Multi-node and restart tests live
// beside it.
package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	walmetrics "github.com/hashicorp/raft-wal/metrics"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kroll-dev/kroll/coordinator/clock"
	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/coordinator/train"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// slowApply is the Raft apply (proposed → committed and applied on the
// leader) from which a node logs the command's type and time.
const slowApply = 50 * time.Millisecond

// ErrNotLeader is returned by Apply on a follower; the caller forwards the
// command to the leader.
var ErrNotLeader = errors.New("store: not the leader")

// ErrOutcomeUnknown is returned when leadership was lost after a command was
// proposed: it may or may not be committed, so it must not be retried
// blindly elsewhere; the client decides (acquire and release are
// idempotent for the holder).
var ErrOutcomeUnknown = errors.New("store: leadership lost while committing; outcome unknown")

// Config configures a node.
type Config struct {
	NodeID   string
	DataDir  string
	RaftAddr string
	HTTPAddr string
	// Peers is the initial voter set (id → raft address) that a node
	// without Raft state bootstraps.
	Peers map[string]string
	// Join, for a node added to a running cluster, skips the bootstrap: the
	// node waits until the leader adds it (krollctl cluster join). Peers
	// must then list at least one member of the cluster: until the node
	// has a configuration, only the nodes of Peers may reach it.
	Join bool
	// TLS, when set, secures the Raft transport (mutual TLS): RootCAs and
	// ClientCAs are the peer CA, and the certificate must carry the URI
	// SAN kroll:peer:<NodeID>. Peers must prove kroll:peer:<id> for an id
	// of the Raft configuration, on accept and on dial.
	TLS *tls.Config
	// PeerToken, without TLS, authenticates Raft connections (a
	// challenge–response before the Raft stream, both ways); without TLS
	// and without a token every Raft connection is refused, which only a
	// single-node cluster survives.
	PeerToken string
	// Timing travels in slot commands (see fsm.Timing).
	Timing fsm.Timing
	// TickInterval is how often the leader replicates lease expiry.
	TickInterval time.Duration
	// HeartbeatInterval is the agents' heartbeat interval (10 s when
	// zero): the leader's liveness grace is at least three of them.
	HeartbeatInterval time.Duration
	// LivenessInterval is how often the leader looks for silent hosts (1 s
	// when zero).
	LivenessInterval time.Duration
	// ApplyTimeout bounds one Raft apply.
	ApplyTimeout time.Duration
	// Raft timing; defaults suit a LAN quorum.
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout time.Duration
	// SnapshotThreshold is the number of log entries between snapshots.
	SnapshotThreshold uint64
	Logger            *slog.Logger
	// Clock is the source of the leader's command times (the host's clock
	// when nil): stamps follow its monotonic reading from the term's
	// anchor, its wall clock only anchors them (see package clock).
	Clock clock.Clock
	// ClockStepThreshold is the wall-clock offset from the stamped time
	// beyond which a step is logged and counted (clock.DefaultStepThreshold
	// when zero).
	ClockStepThreshold time.Duration
	// Registerer, when set, receives the node's Raft metrics:
	// hashicorp/raft's own (kroll_raft_*, see RaftMetricsPrefix; through
	// go-metrics' process-wide instance) and the log's
	// (kroll_raft_wal_*).
	Registerer prometheus.Registerer
}

func (c *Config) defaults() {
	if c.Timing == (fsm.Timing{}) {
		c.Timing = fsm.Timing{Lease: time.Minute, RebootDeadline: 20 * time.Minute, AliveWithin: 45 * time.Second}
	}
	if c.TickInterval == 0 {
		c.TickInterval = time.Second
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 10 * time.Second
	}
	if c.LivenessInterval == 0 {
		c.LivenessInterval = time.Second
	}
	c.Timing.LivenessGrace = max(c.Timing.LivenessGrace, c.Timing.AliveWithin, 3*c.HeartbeatInterval)
	if c.ApplyTimeout == 0 {
		c.ApplyTimeout = 5 * time.Second
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = time.Second
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = time.Second
	}
	if c.LeaderLeaseTimeout == 0 {
		c.LeaderLeaseTimeout = 500 * time.Millisecond
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Clock == nil {
		c.Clock = clock.NewSystem()
	}
}

// Store is a running Raft node with its state machine.
type Store struct {
	cfg       Config
	fsm       *fsm.FSM
	raft      *raft.Raft
	log       *wal.WAL
	meta      *metadb.BoltMetaDB
	transport *raft.NetworkTransport
	gate      *peerGate
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	// stamper gives the leader's command times; anchorMu serializes
	// anchoring at the start of a term.
	stamper  *clock.Stamper
	anchorMu sync.Mutex
	// lv is the in-memory liveness table (see liveness.go).
	lv liveness
	// lock is the data directory's lock, held until Close.
	lock *dirLock
	// restoring is held by a restore (backup.go) from reading the live
	// state until Raft installed the merged snapshot; every Apply holds
	// it shared, so no command lands in between and is lost.
	restoring sync.RWMutex
}

// Open starts a node: it opens (or creates) the on-disk state, bootstraps
// the configuration from Peers when there is no Raft state yet, and
// joins the quorum.
func Open(cfg Config) (*Store, error) {
	cfg.defaults()
	if cfg.Join && !listsOther(cfg.Peers, cfg.NodeID) {
		return nil, errors.New("store: a joining node needs Peers listing at least one member of the cluster: until it is added, only those may reach it")
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "wal"), 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	// One process per data directory: a second node, or a recovery
	// (Recover), is refused while this one runs.
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	opened := false
	defer func() {
		if !opened {
			lock.unlock()
		}
	}()
	hl := newRaftLogger(cfg.Logger)
	var walMetrics walmetrics.Collector = &walmetrics.NoOpCollector{}
	if cfg.Registerer != nil {
		if err := exportRaftMetrics(cfg.Registerer); err != nil {
			return nil, err
		}
		wm, err := newWALMetrics(cfg.Registerer)
		if err != nil {
			return nil, err
		}
		walMetrics = wm
	}
	// The WAL does not close a meta store it opened itself; own it so that
	// Close releases its file lock (a node restarted in-process reopens it).
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(filepath.Join(cfg.DataDir, "wal"), wal.WithLogger(hl), wal.WithMetaStore(meta), wal.WithMetricsCollector(walMetrics))
	if err != nil {
		meta.Close()
		return nil, fmt.Errorf("store: open log: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 3, hl)
	if err != nil {
		w.Close()
		meta.Close()
		return nil, fmt.Errorf("store: snapshots: %w", err)
	}
	gate := &peerGate{self: cfg.NodeID, peers: cfg.Peers}
	trans, err := newTransport(cfg, gate, hl)
	if err != nil {
		w.Close()
		meta.Close()
		return nil, err
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = hl
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 512

	f := fsm.New()
	lm, err := newLockMetrics(cfg.Registerer, cfg.Logger)
	if err != nil {
		trans.Close()
		w.Close()
		meta.Close()
		return nil, err
	}
	f.ObserveLocks(lm.observe)
	stamper := clock.NewStamper(cfg.Clock, cfg.ClockStepThreshold, cfg.Logger)
	// Entries already in the log when the process starts are replays:
	// their times are old, they must not bound the clock (see observer).
	replayed, err := w.LastIndex()
	if err != nil {
		trans.Close()
		w.Close()
		meta.Close()
		return nil, fmt.Errorf("store: last log index: %w", err)
	}
	obs := &observer{FSM: f, stamper: stamper, replayed: replayed, log: cfg.Logger}
	has, err := raft.HasExistingState(w, w, snaps)
	if err != nil {
		trans.Close()
		w.Close()
		meta.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	if !has && !cfg.Join {
		if err := raft.BootstrapCluster(rc, w, w, snaps, trans, bootstrapConfig(cfg.Peers)); err != nil {
			trans.Close()
			w.Close()
			meta.Close()
			return nil, fmt.Errorf("store: bootstrap: %w", err)
		}
		cfg.Logger.Info("bootstrapped cluster", "peers", len(cfg.Peers))
	}
	// Recent entries served from memory: followers catching up and the
	// leader's replication read them instead of the WAL.
	logs, err := raft.NewLogCache(1024, w)
	if err != nil {
		trans.Close()
		w.Close()
		meta.Close()
		return nil, fmt.Errorf("store: log cache: %w", err)
	}
	r, err := raft.NewRaft(rc, obs, logs, w, snaps, trans)
	if err != nil {
		trans.Close()
		w.Close()
		meta.Close()
		return nil, fmt.Errorf("store: start raft: %w", err)
	}
	gate.raft.Store(r)
	// Snapshots restored from now on come from the leader (InstallSnapshot).
	obs.started.Store(true)
	s := &Store{cfg: cfg, fsm: f, raft: r, log: w, meta: meta, transport: trans, gate: gate, done: make(chan struct{}),
		stamper: stamper, lock: lock}
	opened = true
	s.wg.Add(2)
	go s.leaderLoop()
	go s.livenessLoop()
	return s, nil
}

// observer is the raft.FSM the node runs: the state machine, telling the
// stamper the state's time after every entry this process receives and
// applies, so that a term this node leads later is anchored no further
// ahead of the state's time than the real time elapsed since (see package
// clock). Entries that were in the log at start (index ≤ replayed) and the
// snapshot restored at start are replays of the past, not observations.
//
// It also reports, once and loudly, a state machine that halted (see
// fsm.FSM.Halted).
type observer struct {
	*fsm.FSM
	stamper  *clock.Stamper
	replayed uint64
	started  atomic.Bool
	log      *slog.Logger
	reported atomic.Bool
}

// Apply implements raft.FSM.
func (o *observer) Apply(l *raft.Log) any {
	res := o.FSM.Apply(l)
	if r, ok := res.(fsm.Result); ok && r.Halted {
		o.reportHalt()
	}
	if l.Index > o.replayed {
		o.observeNow()
	}
	return res
}

// reportHalt logs the state machine's halt the first time it is met.
func (o *observer) reportHalt() {
	if err := o.FSM.Halted(); err != nil && o.reported.CompareAndSwap(false, true) {
		o.log.Error("STATE MACHINE HALTED: this node applies no more commands and refuses writes until it runs a version that knows the replicated format; upgrade it and restart it (its log is kept)", "err", err)
	}
}

// Restore implements raft.FSM.
func (o *observer) Restore(r io.ReadCloser) error {
	if err := o.FSM.Restore(r); err != nil {
		o.reportHalt()
		return err
	}
	if o.started.Load() {
		o.observeNow()
	}
	return nil
}

func (o *observer) observeNow() {
	var now time.Time
	o.FSM.View(func(st *fsm.State) { now = st.Now })
	if !now.IsZero() {
		o.stamper.Observe(now)
	}
}

// listsOther reports whether peers names a node other than self.
func listsOther(peers map[string]string, self string) bool {
	for id := range peers {
		if id != self {
			return true
		}
	}
	return false
}

func bootstrapConfig(peers map[string]string) raft.Configuration {
	ids := make([]string, 0, len(peers))
	for id := range peers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var c raft.Configuration
	for _, id := range ids {
		c.Servers = append(c.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress(peers[id])})
	}
	return c
}

// Close leaves the node's Raft state on disk and stops it.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.done)
		s.wg.Wait()
		err = s.raft.Shutdown().Error()
		s.transport.Close()
		if cerr := s.log.Close(); err == nil {
			err = cerr
		}
		if cerr := s.meta.Close(); err == nil {
			err = cerr
		}
		if cerr := s.lock.unlock(); err == nil {
			err = cerr
		}
	})
	return err
}

// FSM returns the state machine for reads.
func (s *Store) FSM() *fsm.FSM { return s.fsm }

// Timing returns the durations put into slot commands.
func (s *Store) Timing() fsm.Timing { return s.cfg.Timing }

// NodeID returns this node's id.
func (s *Store) NodeID() string { return s.cfg.NodeID }

// IsLeader reports whether this node is the leader.
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// Leader returns the leader's id and its HTTP address (empty while
// unknown).
func (s *Store) Leader() (id, httpAddr string) {
	_, lid := s.raft.LeaderWithID()
	id = string(lid)
	if id == "" {
		return "", ""
	}
	s.fsm.View(func(st *fsm.State) {
		if m := st.Members[id]; m != nil {
			httpAddr = m.HTTPAddr
		}
	})
	if id == s.cfg.NodeID {
		httpAddr = s.cfg.HTTPAddr
	}
	return id, httpAddr
}

// Ready reports whether the node is part of a quorum with a known leader
// whose HTTP address it knows (so that it can forward writes), and its
// state machine applies (see Halted).
func (s *Store) Ready() bool {
	if s.fsm.Halted() != nil {
		return false
	}
	id, addr := s.Leader()
	return id != "" && addr != ""
}

// Current reports whether this node may answer from its own state as
// the cluster's: its state machine applies (see Halted), and it is the
// leader (which steps down when it loses contact with a quorum for its
// leader lease), or a follower that knows the leader and heard from it
// within the Raft heartbeat timeout (after which it would start an
// election itself). A node cut off from the majority, a candidate, or a
// follower whose leader went quiet is not current.
func (s *Store) Current() bool {
	if s.fsm.Halted() != nil {
		return false
	}
	switch s.raft.State() {
	case raft.Leader:
		return true
	case raft.Follower:
		if _, lid := s.raft.LeaderWithID(); lid == "" {
			return false
		}
		last := s.raft.LastContact()
		return !last.IsZero() && time.Since(last) <= s.cfg.HeartbeatTimeout
	default:
		return false
	}
}

// Halted returns why this node's state machine stopped applying (it met a
// command or snapshot of a type or format version it does not know, or
// one it could not decode), or nil. A halted node refuses every write.
func (s *Store) Halted() error { return s.fsm.Halted() }

// Apply proposes a command on the leader, stamped with the leader's
// monotonic clock anchored at its term start (see stamp), and returns the
// state machine's result once the command is committed. On a follower it
// returns ErrNotLeader. On a halted node (see Halted) it returns an error
// wrapping fsm.ErrHalted and proposes nothing.
func (s *Store) Apply(ctx context.Context, typ fsm.Type, payload any) (fsm.Result, error) {
	if err := s.fsm.Halted(); err != nil {
		return fsm.Result{}, fmt.Errorf("store: %w", err)
	}
	if s.raft.State() != raft.Leader {
		return fsm.Result{}, ErrNotLeader
	}
	now, err := s.stamp()
	if err != nil {
		return fsm.Result{}, err
	}
	data, err := fsm.NewCommand(typ, now, payload)
	if err != nil {
		return fsm.Result{}, err
	}
	s.restoring.RLock()
	defer s.restoring.RUnlock()
	timeout := s.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	proposed := time.Now()
	fut := s.raft.Apply(data, timeout)
	err = fut.Error()
	if took := time.Since(proposed); took >= slowApply {
		s.cfg.Logger.Info("slow apply", "type", typ, "took", took, "err", err)
	}
	if err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipTransferInProgress):
			// Not proposed: safe to forward to the new leader.
			return fsm.Result{}, fmt.Errorf("%w: %v", ErrNotLeader, err)
		case errors.Is(err, raft.ErrLeadershipLost):
			// Proposed, and it may still commit: forwarding it would risk
			// applying it twice.
			return fsm.Result{}, fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)
		}
		return fsm.Result{}, fmt.Errorf("store: apply %s: %w", typ, err)
	}
	res, ok := fut.Response().(fsm.Result)
	if !ok {
		return fsm.Result{}, fmt.Errorf("store: apply %s: unexpected response %T", typ, fut.Response())
	}
	if res.Halted {
		return fsm.Result{}, fmt.Errorf("store: apply %s: %w", typ, s.fsm.Halted())
	}
	res.Index = fut.Index()
	return res, nil
}

// WaitApplied waits until this node's state machine has applied the log
// up to index, so that a follower that forwarded a write reads its
// effect.
func (s *Store) WaitApplied(ctx context.Context, index uint64) error {
	// raft.AppliedIndex moves when an entry is handed to the FSM, not when
	// it has been applied; the FSM's own index is the one that counts.
	for s.fsm.Index() < index {
		if err := s.fsm.Halted(); err != nil {
			return fmt.Errorf("store: waiting for index %d: %w", index, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("store: waiting for index %d (applied %d): %w", index, s.fsm.Index(), ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// Members lists the Raft configuration with the HTTP addresses the FSM
// knows.
func (s *Store) Members() ([]wire.Member, error) {
	fut := s.raft.GetConfiguration()
	if err := fut.Error(); err != nil {
		return nil, fmt.Errorf("store: configuration: %w", err)
	}
	leaderID, _ := s.Leader()
	var out []wire.Member
	s.fsm.View(func(st *fsm.State) {
		for _, srv := range fut.Configuration().Servers {
			m := wire.Member{ID: string(srv.ID), RaftAddr: string(srv.Address), Leader: string(srv.ID) == leaderID, Voter: srv.Suffrage == raft.Voter}
			if fm := st.Members[m.ID]; fm != nil {
				m.HTTPAddr = fm.HTTPAddr
			}
			out = append(out, m)
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Join adds a voter (leader only).
func (s *Store) Join(ctx context.Context, req wire.JoinRequest) error {
	if !s.IsLeader() {
		return ErrNotLeader
	}
	if err := s.raft.AddVoter(raft.ServerID(req.ID), raft.ServerAddress(req.RaftAddr), 0, s.cfg.ApplyTimeout).Error(); err != nil {
		return fmt.Errorf("store: add voter %s: %w", req.ID, err)
	}
	if req.HTTPAddr != "" {
		if _, err := s.Apply(ctx, fsm.TypeSetMember, fsm.SetMember{ID: req.ID, RaftAddr: req.RaftAddr, HTTPAddr: req.HTTPAddr}); err != nil {
			return err
		}
	}
	return nil
}

// Remove removes a member (leader only).
func (s *Store) Remove(ctx context.Context, id string) error {
	if !s.IsLeader() {
		return ErrNotLeader
	}
	if err := s.raft.RemoveServer(raft.ServerID(id), 0, s.cfg.ApplyTimeout).Error(); err != nil {
		return fmt.Errorf("store: remove %s: %w", id, err)
	}
	_, err := s.Apply(ctx, fsm.TypeRemoveMember, fsm.RemoveMember{ID: id})
	return err
}

// stamp returns the time of a command the leader proposes now, anchoring
// the term's clock first if this term has no anchor yet.
func (s *Store) stamp() (time.Time, error) {
	if term := s.raft.CurrentTerm(); !s.stamper.Anchored(term) {
		if err := s.anchor(term); err != nil {
			return time.Time{}, err
		}
	}
	return s.stamper.Now(), nil
}

// anchor anchors the stamps of term once the FSM has applied every entry
// of earlier terms (a barrier), so that the new leader never stamps earlier
// than the old leader's last stamp, nor further ahead of it than the real
// time this node saw pass (see clock.Stamper.Anchor).
func (s *Store) anchor(term uint64) error {
	s.anchorMu.Lock()
	defer s.anchorMu.Unlock()
	if s.stamper.Anchored(term) {
		return nil
	}
	if err := s.raft.Barrier(s.cfg.ApplyTimeout).Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrLeadershipTransferInProgress) {
			return fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
		return fmt.Errorf("store: barrier before anchoring the clock: %w", err)
	}
	var last time.Time
	s.fsm.View(func(st *fsm.State) { last = st.Now })
	at := s.stamper.Anchor(term, last)
	s.cfg.Logger.Info("leader clock anchored", "term", term, "anchor", at, "state_time", last)
	return nil
}

// ClockSteps returns the last observed offset of this node's wall clock
// from the time it stamps (positive: wall ahead) and how many wall-clock
// steps it has observed while leading.
func (s *Store) ClockSteps() (offset time.Duration, steps uint64) { return s.stamper.Steps() }

// IsPeer reports whether id is a server of the latest Raft
// configuration: the only nodes allowed on the Raft port and on the
// cluster-internal HTTP routes.
func (s *Store) IsPeer(id string) bool { return s.gate.member(id) }

// Stats returns Raft's statistics (state, term, commit index, ...).
func (s *Store) Stats() map[string]string { return s.raft.Stats() }

// Snapshot forces a snapshot (tests, backups).
func (s *Store) Snapshot() error { return s.raft.Snapshot().Error() }

// leaderLoop performs the leader's duties while this node leads: it
// records its own addresses and replicates lease expiry.
func (s *Store) leaderLoop() {
	defer s.wg.Done()
	tick := time.NewTicker(s.cfg.TickInterval)
	defer tick.Stop()
	announced := false
	for {
		select {
		case <-s.done:
			return
		case leader := <-s.raft.LeaderCh():
			announced = false
			if leader {
				s.cfg.Logger.Info("became leader", "node", s.cfg.NodeID)
				if err := s.anchor(s.raft.CurrentTerm()); err != nil {
					s.cfg.Logger.Warn("anchor clock", "err", err)
				}
			}
		case <-tick.C:
		}
		if !s.IsLeader() {
			continue
		}
		if err := s.fsm.Halted(); err != nil {
			// A halted leader refuses every write: hand the lead to a
			// node that can apply the log.
			s.cfg.Logger.Error("state machine halted: transferring leadership", "err", err)
			if err := s.raft.LeadershipTransfer().Error(); err != nil {
				s.cfg.Logger.Warn("leadership transfer", "err", err)
			}
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ApplyTimeout)
		if !announced {
			if _, err := s.Apply(ctx, fsm.TypeSetMember, fsm.SetMember{ID: s.cfg.NodeID, RaftAddr: s.cfg.RaftAddr, HTTPAddr: s.cfg.HTTPAddr}); err == nil {
				announced = true
			}
		}
		if _, err := s.Apply(ctx, fsm.TypeTick, fsm.Tick{Timing: s.cfg.Timing, Term: s.raft.CurrentTerm()}); err != nil && !errors.Is(err, ErrNotLeader) {
			s.cfg.Logger.Warn("tick", "err", err)
		}
		s.driveTrains(ctx)
		cancel()
	}
}

// driveTrains proposes the release trains' steps (train.Decide) on the
// state just ticked, at its time: the state's time is the leader's
// stamped clock, so a compressed clock drives the trains too. Each step
// is checked again when applied; a refused one is logged and decided
// again on the next tick.
func (s *Store) driveTrains(ctx context.Context) {
	var steps []fsm.TrainStep
	s.fsm.ViewAs(lockOpTrains, func(st *fsm.State) { steps = train.Decide(st, st.Now) })
	for _, step := range steps {
		res, err := s.Apply(ctx, fsm.TypeTrainStep, step)
		switch {
		case err != nil:
			if !errors.Is(err, ErrNotLeader) {
				s.cfg.Logger.Warn("train step", "line", step.Line, "action", step.Action, "release", step.Release, "err", err)
			}
			return
		case res.Err != nil:
			s.cfg.Logger.Warn("train step refused", "line", step.Line, "action", step.Action, "release", step.Release, "kind", res.Err.Kind, "reason", res.Err.Value)
		}
	}
}

// livenessLoop marks silent hosts while this node leads (see
// liveness.go).
func (s *Store) livenessLoop() {
	defer s.wg.Done()
	tick := time.NewTicker(s.cfg.LivenessInterval)
	defer tick.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ApplyTimeout)
		s.markSilent(ctx)
		cancel()
	}
}

// newTransport returns the Raft network transport: mutual TLS when
// cfg.TLS is set, else TCP authenticated with the peer token. Either way
// only members of the Raft configuration get through (see peerauth.go).
func newTransport(cfg Config, gate *peerGate, hl hclog.Logger) (*raft.NetworkTransport, error) {
	addr, err := net.ResolveTCPAddr("tcp", cfg.RaftAddr)
	if err != nil {
		return nil, fmt.Errorf("store: raft address %q: %w", cfg.RaftAddr, err)
	}
	if cfg.TLS != nil {
		if err := checkOwnCertificate(cfg.TLS, cfg.NodeID); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", cfg.RaftAddr)
	if err != nil {
		return nil, fmt.Errorf("store: raft transport: %w", err)
	}
	tc := &raft.NetworkTransportConfig{MaxPool: 5, Timeout: 10 * time.Second, Logger: hl}
	if cfg.TLS != nil {
		tc.Stream = newTLSStream(ln, addr, cfg.TLS, gate, cfg.Logger)
	} else {
		tc.Stream = &tokenStream{Listener: ln, advertise: addr, self: cfg.NodeID, token: []byte(cfg.PeerToken), gate: gate, log: cfg.Logger}
	}
	return raft.NewNetworkTransportWithConfig(tc), nil
}
