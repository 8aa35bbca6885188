package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/coordinator/store"
	"github.com/kroll-dev/kroll/pkg/snapshotfile"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// pathInternalSnapshot is where a follower forwards a backup or restore
// to the leader (role peer).
const pathInternalSnapshot = "/internal/v1/snapshot"

// maxSnapshotRequest bounds a restore's body: the header line and the
// largest payload.
const maxSnapshotRequest = snapshotfile.MaxHeaderSize + 1 + snapshotfile.MaxSize

// snapshotStore is what the backup routes need of the Raft node (see
// store.Store.Backup and Restore).
type snapshotStore interface {
	Backup(ctx context.Context) (data []byte, index, term uint64, err error)
	Restore(ctx context.Context, data []byte) (fsm.Carried, error)
}

// snapshotSave answers GET /api/v1/snapshot: the leader's state, as of
// everything it committed, as a snapshot file (package snapshotfile). A
// follower fetches it from the leader.
func (s *Server) snapshotSave(w http.ResponseWriter, r *http.Request, id Identity) {
	s.saveSnapshot(w, r, id, true)
}

// internalSnapshotSave is snapshotSave forwarded by a follower.
func (s *Server) internalSnapshotSave(w http.ResponseWriter, r *http.Request, id Identity) {
	s.saveSnapshot(w, r, id, false)
}

func (s *Server) saveSnapshot(w http.ResponseWriter, r *http.Request, id Identity, mayForward bool) {
	st, ok := s.cfg.Store.(snapshotStore)
	if !ok {
		writeError(w, http.StatusInternalServerError, wire.KindInternal, "this node's store takes no backups")
		return
	}
	data, index, term, err := st.Backup(r.Context())
	switch {
	case errors.Is(err, store.ErrNotLeader) && mayForward:
		s.forwardSnapshot(w, r, nil)
		return
	case errors.Is(err, store.ErrNotLeader):
		writeError(w, http.StatusServiceUnavailable, wire.KindNoLeader, "leadership moved while taking the snapshot; retry")
		return
	case errors.Is(err, fsm.ErrHalted):
		writeError(w, http.StatusServiceUnavailable, wire.KindInternal, err.Error())
		return
	case err != nil:
		s.cfg.Logger.Error("snapshot save", "err", err)
		writeError(w, http.StatusInternalServerError, wire.KindInternal, err.Error())
		return
	}
	file, err := snapshotfile.Encode(snapshotfile.Header{FSMFormat: fsm.FormatVersion, Index: index, Term: term,
		Node: s.cfg.Store.NodeID(), Created: s.cfg.Now().UTC()}, data)
	if err != nil {
		writeError(w, http.StatusInternalServerError, wire.KindInternal, err.Error())
		return
	}
	s.cfg.Logger.Info("snapshot saved", "by", id.String(), "index", index, "bytes", len(file))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(file)))
	_, _ = w.Write(file)
}

// snapshotRestore answers POST /api/v1/snapshot: it validates the file
// (format version, checksum, the state machine's strict decoding) and
// restores it through Raft on the leader, so that every member takes it.
// A file that fails validation is refused (400) and nothing changes.
func (s *Server) snapshotRestore(w http.ResponseWriter, r *http.Request, id Identity) {
	s.restoreSnapshot(w, r, id, true)
}

// internalSnapshotRestore is snapshotRestore forwarded by a follower.
func (s *Server) internalSnapshotRestore(w http.ResponseWriter, r *http.Request, id Identity) {
	s.restoreSnapshot(w, r, id, false)
}

func (s *Server) restoreSnapshot(w http.ResponseWriter, r *http.Request, id Identity, mayForward bool) {
	st, ok := s.cfg.Store.(snapshotStore)
	if !ok {
		writeError(w, http.StatusInternalServerError, wire.KindInternal, "this node's store restores no backups")
		return
	}
	h, payload, err := snapshotfile.Read(http.MaxBytesReader(w, r.Body, maxSnapshotRequest), 0)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, wire.KindRequestTooLarge, err.Error())
			return
		}
		writeError(w, http.StatusBadRequest, wire.KindInvalidRequest, err.Error())
		return
	}
	if h.FSMFormat > fsm.FormatVersion {
		writeError(w, http.StatusBadRequest, wire.KindInvalidRequest,
			"snapshot of state machine format v"+strconv.Itoa(h.FSMFormat)+": this coordinator knows formats up to v"+strconv.Itoa(fsm.FormatVersion)+"; upgrade the coordinators first")
		return
	}
	// The times are bounded by the leader (Store.Restore), whose clock
	// counts.
	if err := store.ValidateSnapshot(payload, time.Time{}); err != nil {
		writeError(w, http.StatusBadRequest, wire.KindInvalidRequest, err.Error())
		return
	}
	carried, err := st.Restore(r.Context(), payload)
	switch {
	case errors.Is(err, store.ErrNotLeader) && mayForward:
		// The leader logs the forwarding peer: the admin is logged here.
		s.cfg.Logger.Warn("snapshot restore forwarded to the leader", "by", id.String(), "snapshot_node", h.Node,
			"snapshot_index", h.Index, "snapshot_created", h.Created)
		file, err := snapshotfile.Encode(h, payload)
		if err != nil {
			writeError(w, http.StatusInternalServerError, wire.KindInternal, err.Error())
			return
		}
		s.forwardSnapshot(w, r, file)
		return
	case errors.Is(err, store.ErrNotLeader), errors.Is(err, store.ErrOutcomeUnknown):
		writeError(w, http.StatusServiceUnavailable, wire.KindNoLeader, err.Error())
		return
	case errors.Is(err, store.ErrInvalidSnapshot):
		writeError(w, http.StatusBadRequest, wire.KindInvalidRequest, err.Error())
		return
	case err != nil:
		s.cfg.Logger.Error("snapshot restore", "by", id.String(), "err", err)
		writeError(w, http.StatusInternalServerError, wire.KindInternal, err.Error())
		return
	}
	out := wire.SnapshotRestored{Index: h.Index, Term: h.Term, SlotsCarried: carried.Slots}
	s.cfg.Store.FSM().View(func(st *fsm.State) { out.Datacenters, out.Hosts = len(st.Datacenters), len(st.Hosts) })
	s.cfg.Logger.Warn("replicated state restored from a snapshot", "by", id.String(), "snapshot_node", h.Node,
		"snapshot_index", h.Index, "snapshot_created", h.Created, "slots_carried", carried.Slots, "tokens_raised", carried.Tokens)
	writeJSON(w, out)
}

// forwardSnapshot sends a backup (body nil: GET) or restore (POST body)
// to the leader's internal route and passes its answer through.
func (s *Server) forwardSnapshot(w http.ResponseWriter, r *http.Request, body []byte) {
	leaderID, addr := s.cfg.Store.Leader()
	if leaderID == "" || addr == "" || leaderID == s.cfg.Store.NodeID() {
		writeError(w, http.StatusServiceUnavailable, wire.KindNoLeader, errNoLeader.Error())
		return
	}
	method, rd := http.MethodGet, io.Reader(nil)
	if body != nil {
		method, rd = http.MethodPost, bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(r.Context(), method, s.cfg.PeerScheme+"://"+addr+pathInternalSnapshot, rd)
	if err != nil {
		writeError(w, http.StatusInternalServerError, wire.KindInternal, err.Error())
		return
	}
	if s.cfg.PeerToken != "" {
		req.Header.Set("Authorization", "Bearer "+s.cfg.PeerToken)
	}
	resp, err := s.cfg.PeerClient.Do(req)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, wire.KindNoLeader, "forwarding to leader "+leaderID+" at "+addr+": "+err.Error())
		return
	}
	defer resp.Body.Close()
	if resp.TLS != nil {
		if id, err := s.peerOf(*resp.TLS); err != nil || id != leaderID {
			writeError(w, http.StatusServiceUnavailable, wire.KindNoLeader, "forwarding to leader "+leaderID+" at "+addr+": answered by "+strconv.Quote(id))
			return
		}
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		s.cfg.Logger.Error("leader refused this node's peer credentials", "leader", leaderID, "status", resp.StatusCode)
		writeError(w, http.StatusInternalServerError, wire.KindInternal, "leader "+leaderID+" refused this node's peer credentials")
		return
	}
	for _, k := range []string{"Content-Type", "Content-Length"} {
		if v := resp.Header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, io.LimitReader(resp.Body, maxSnapshotRequest))
}
