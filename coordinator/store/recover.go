package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"

	"github.com/kroll-dev/kroll/coordinator/fsm"
)

// RecoverConfig configures Recover.
type RecoverConfig struct {
	// NodeID is the id of the node whose data directory is recovered; it
	// must be one of Peers.
	NodeID string
	// DataDir is the node's data directory (--data-dir).
	DataDir string
	// Peers is the new voter set (id → Raft address): the surviving
	// nodes, the same on every one of them.
	Peers map[string]string
	// DryRun only inspects the data directory (see RecoverReport) and
	// changes nothing.
	DryRun bool
	Logger *slog.Logger
}

// RecoverReport describes a data directory before recovery: the last
// entry of its Raft log (compare it across survivors: recover the one
// with the highest term, then index, and let the others catch up from
// it) and how far its state machine reached.
type RecoverReport struct {
	LastIndex, LastTerm uint64
	// StateIndex is the Raft index of the last command the replayed state
	// machine applied.
	StateIndex uint64
	// Datacenters and Hosts count the replayed state.
	Datacenters, Hosts int
}

// Recover rewrites the Raft configuration of a stopped node to Peers, for
// a cluster that lost its quorum for good (hashicorp/raft's
// RecoverCluster): it replays the node's snapshot and log into a state
// machine, writes a snapshot holding that state with Peers as the
// configuration, and compacts the log. Started afterwards, the node runs
// with Peers as its voters. Every entry in the node's log is applied,
// committed or not. The node must not run: Recover holds the data
// directory's lock and refuses a directory a process holds.
func Recover(ctx context.Context, cfg RecoverConfig) (RecoverReport, error) {
	var rep RecoverReport
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if _, ok := cfg.Peers[cfg.NodeID]; !ok {
		return rep, fmt.Errorf("store: recover: the new configuration does not list node %q itself", cfg.NodeID)
	}
	walDir := filepath.Join(cfg.DataDir, "wal")
	if fi, err := os.Stat(walDir); err != nil || !fi.IsDir() {
		return rep, fmt.Errorf("store: recover: %s holds no Raft log (%s): is it the node's --data-dir?", cfg.DataDir, walDir)
	}
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return rep, err
	}
	defer lock.unlock()
	if err := boltFree(cfg.DataDir); err != nil {
		return rep, err
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	hl := newRaftLogger(cfg.Logger)
	meta := &metadb.BoltMetaDB{}
	defer meta.Close()
	w, err := wal.Open(walDir, wal.WithLogger(hl), wal.WithMetaStore(meta))
	if err != nil {
		return rep, fmt.Errorf("store: recover: open log: %w", err)
	}
	defer w.Close()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 3, hl)
	if err != nil {
		return rep, fmt.Errorf("store: recover: snapshots: %w", err)
	}
	has, err := raft.HasExistingState(w, w, snaps)
	if err != nil {
		return rep, fmt.Errorf("store: recover: %w", err)
	}
	if !has {
		return rep, fmt.Errorf("store: recover: %s holds no Raft state: nothing to recover", cfg.DataDir)
	}
	if rep.LastIndex, rep.LastTerm, err = lastEntry(w, snaps); err != nil {
		return rep, err
	}
	f := fsm.New()
	if err := replay(f, w, snaps); err != nil {
		return rep, err
	}
	f.View(func(st *fsm.State) {
		rep.StateIndex, rep.Datacenters, rep.Hosts = st.Index, len(st.Datacenters), len(st.Hosts)
	})
	if err := f.Halted(); err != nil {
		return rep, fmt.Errorf("store: recover: this version cannot replay the log: %w", err)
	}
	if cfg.DryRun {
		return rep, nil
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = hl
	_, trans := raft.NewInmemTransport(raft.ServerAddress(cfg.Peers[cfg.NodeID]))
	defer trans.Close()
	if err := raft.RecoverCluster(rc, fsm.New(), w, w, snaps, trans, bootstrapConfig(cfg.Peers)); err != nil {
		return rep, fmt.Errorf("store: recover: %w", err)
	}
	cfg.Logger.Info("recovered Raft configuration", "node", cfg.NodeID, "voters", len(cfg.Peers),
		"last_index", rep.LastIndex, "last_term", rep.LastTerm)
	return rep, nil
}

// lastEntry returns the index and term of the last entry of the log (or
// of the latest snapshot when the log is empty).
func lastEntry(w *wal.WAL, snaps raft.SnapshotStore) (index, term uint64, err error) {
	last, err := w.LastIndex()
	if err != nil {
		return 0, 0, fmt.Errorf("store: recover: last log index: %w", err)
	}
	if last > 0 {
		var l raft.Log
		if err := w.GetLog(last, &l); err != nil {
			return 0, 0, fmt.Errorf("store: recover: log entry %d: %w", last, err)
		}
		return l.Index, l.Term, nil
	}
	metas, err := snaps.List()
	if err != nil {
		return 0, 0, fmt.Errorf("store: recover: snapshots: %w", err)
	}
	if len(metas) > 0 {
		return metas[0].Index, metas[0].Term, nil
	}
	return 0, 0, nil
}

// replay restores the latest snapshot into f and applies the log entries
// after it, as Raft would on start.
func replay(f *fsm.FSM, w *wal.WAL, snaps raft.SnapshotStore) error {
	metas, err := snaps.List()
	if err != nil {
		return fmt.Errorf("store: recover: snapshots: %w", err)
	}
	var from uint64
	if len(metas) > 0 {
		_, rc, err := snaps.Open(metas[0].ID)
		if err != nil {
			return fmt.Errorf("store: recover: open snapshot %s: %w", metas[0].ID, err)
		}
		if err := f.Restore(rc); err != nil {
			return fmt.Errorf("store: recover: snapshot %s: %w", metas[0].ID, err)
		}
		from = metas[0].Index
	}
	first, err := w.FirstIndex()
	if err != nil {
		return fmt.Errorf("store: recover: first log index: %w", err)
	}
	last, err := w.LastIndex()
	if err != nil {
		return fmt.Errorf("store: recover: last log index: %w", err)
	}
	for i := max(from+1, first); i <= last && first > 0; i++ {
		var l raft.Log
		if err := w.GetLog(i, &l); err != nil {
			if errors.Is(err, raft.ErrLogNotFound) {
				continue
			}
			return fmt.Errorf("store: recover: log entry %d: %w", i, err)
		}
		if l.Type == raft.LogCommand {
			f.Apply(&l)
		}
	}
	return nil
}
