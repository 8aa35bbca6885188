package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kroll-dev/kroll/coordinator/fsm"
)

// ErrInvalidSnapshot is wrapped by Restore's refusal of a snapshot that
// does not decode (see ValidateSnapshot).
var ErrInvalidSnapshot = errors.New("store: invalid snapshot")

// restoreTimeout bounds a restore when the caller's context has no
// deadline.
const restoreTimeout = time.Minute

// Backup returns the state machine's snapshot as of everything this
// leader committed (Raft barrier first), in the state machine's snapshot
// format, and the Raft index and term it covers. Leader only
// (ErrNotLeader on a follower).
func (s *Store) Backup(ctx context.Context) (data []byte, index, term uint64, err error) {
	if err := s.fsm.Halted(); err != nil {
		return nil, 0, 0, fmt.Errorf("store: backup: %w", err)
	}
	if !s.IsLeader() {
		return nil, 0, 0, ErrNotLeader
	}
	if err := s.raft.Barrier(s.timeout(ctx)).Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return nil, 0, 0, fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
		return nil, 0, 0, fmt.Errorf("store: backup: barrier: %w", err)
	}
	term = s.raft.CurrentTerm()
	snap, err := s.fsm.Snapshot()
	if err != nil {
		return nil, 0, 0, fmt.Errorf("store: backup: %w", err)
	}
	defer snap.Release()
	sink := &memorySink{}
	if err := snap.Persist(sink); err != nil {
		return nil, 0, 0, fmt.Errorf("store: backup: %w", err)
	}
	if err := ValidateSnapshot(sink.buf.Bytes(), time.Time{}); err != nil {
		return nil, 0, 0, fmt.Errorf("store: backup: the state machine's own snapshot does not decode: %w", err)
	}
	var st struct {
		Index uint64 `json:"index"`
	}
	if err := json.Unmarshal(sink.buf.Bytes(), &st); err != nil {
		return nil, 0, 0, fmt.Errorf("store: backup: %w", err)
	}
	return sink.buf.Bytes(), st.Index, term, nil
}

// ValidateSnapshot decodes a state machine snapshot as a restore would and
// strictly (no unknown fields, nothing after the document), without
// touching any state: a snapshot it accepts restores. Unless notAfter is
// zero, it also refuses a snapshot whose time, or a host's last heartbeat,
// is later than notAfter (fsm.CheckSnapshotTimes; Restore bounds them by
// the leader's time plus fsm.MaxRestoreSkew).
func ValidateSnapshot(data []byte, notAfter time.Time) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var strict struct {
		V int `json:"v"`
		fsm.State
	}
	if err := dec.Decode(&strict); err != nil {
		return fmt.Errorf("snapshot does not decode: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("snapshot does not decode: data after the state")
	}
	if strict.V < fsm.FormatV2 || strict.V > fsm.FormatVersion {
		return fmt.Errorf("snapshot in format version %d: this version restores formats %d to %d", strict.V, fsm.FormatV2, fsm.FormatVersion)
	}
	f := fsm.New()
	if err := f.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		return err
	}
	if err := f.Halted(); err != nil {
		return err
	}
	if notAfter.IsZero() {
		return nil
	}
	var err error
	f.View(func(st *fsm.State) { err = fsm.CheckSnapshotTimes(st, notAfter) })
	return err
}

// Restore replaces the replicated state with a snapshot (see Backup)
// through Raft (hashicorp/raft Restore): the leader installs it and every
// member takes it from the leader; the Raft configuration stays the
// cluster's. The snapshot is validated first (ValidateSnapshot, its times
// bounded by this leader's: fsm.MaxRestoreSkew): one that does not decode
// is refused and nothing changes. It fails closed (fsm.PrepareRestore):
// the reboot slots held now stay held, fencing tokens and the state's time
// never go backwards. No command is applied between reading the live state
// and the restore. The Raft index is the cluster's: Raft takes the next
// one after its own last index, whatever index the snapshot was taken at.
// The members' HTTP addresses are the cluster's too: the leader re-records
// those of the current members after the restore. Leader only
// (ErrNotLeader).
func (s *Store) Restore(ctx context.Context, data []byte) (fsm.Carried, error) {
	if err := s.fsm.Halted(); err != nil {
		return fsm.Carried{}, fmt.Errorf("store: restore: %w", err)
	}
	if !s.IsLeader() {
		return fsm.Carried{}, ErrNotLeader
	}
	if err := ValidateSnapshot(data, time.Time{}); err != nil {
		return fsm.Carried{}, fmt.Errorf("%w: %w", ErrInvalidSnapshot, err)
	}
	carried, members, err := s.restore(ctx, data)
	if err != nil {
		return carried, err
	}
	s.cfg.Logger.Warn("replicated state restored from a snapshot", "bytes", len(data),
		"slots_carried", carried.Slots, "tokens_raised", carried.Tokens)
	for _, m := range members {
		if !s.IsPeer(m.ID) {
			continue
		}
		if _, err := s.Apply(ctx, fsm.TypeSetMember, m); err != nil {
			return carried, fmt.Errorf("store: restore: re-record member %s: %w", m.ID, err)
		}
	}
	return carried, nil
}

// restore merges data with the live state and restores it, with every
// Apply held off (s.restoring), and returns the members to re-record.
func (s *Store) restore(ctx context.Context, data []byte) (fsm.Carried, []fsm.SetMember, error) {
	s.restoring.Lock()
	defer s.restoring.Unlock()
	// Every command proposed before the lock is applied before the live
	// state is read.
	if err := s.raft.Barrier(s.timeout(ctx)).Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return fsm.Carried{}, nil, fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
		return fsm.Carried{}, nil, fmt.Errorf("store: restore: barrier: %w", err)
	}
	merged, carried, err := s.fsm.PrepareRestore(data, s.cfg.Clock.Wall())
	if err != nil {
		return carried, nil, fmt.Errorf("%w: %w", ErrInvalidSnapshot, err)
	}
	var members []fsm.SetMember
	s.fsm.View(func(st *fsm.State) {
		for id, m := range st.Members {
			members = append(members, fsm.SetMember{ID: id, RaftAddr: m.RaftAddr, HTTPAddr: m.HTTPAddr})
		}
	})
	// Index 0: Raft takes its own last index plus one. An index from the
	// file would be trusted input: Raft takes the larger of the two, and
	// one near the top of the range wraps.
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: int64(len(merged))}
	if err := s.raft.Restore(meta, bytes.NewReader(merged), s.timeout(ctx)); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return carried, nil, fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)
		}
		return carried, nil, fmt.Errorf("store: restore: %w", err)
	}
	return carried, members, nil
}

// timeout is the time left in ctx, or restoreTimeout.
func (s *Store) timeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(time.Until(dl), time.Millisecond)
	}
	return restoreTimeout
}

// memorySink is a raft.SnapshotSink into memory.
type memorySink struct{ buf bytes.Buffer }

func (m *memorySink) Write(p []byte) (int, error) { return m.buf.Write(p) }
func (m *memorySink) Close() error                { return nil }
func (m *memorySink) ID() string                  { return "backup" }
func (m *memorySink) Cancel() error               { return nil }
