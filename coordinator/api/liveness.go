package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/coordinator/store"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// pathInternalLiveness is where followers send the leader the hosts they
// heard (peers only, like every /internal route).
const pathInternalLiveness = "/internal/v1/liveness"

const (
	// maxLivenessBatch bounds the hosts of one liveness request.
	maxLivenessBatch = 20000
	// maxLivenessBody bounds its body: maxLivenessBatch ids of the longest
	// valid length with their ages.
	maxLivenessBody = maxLivenessBatch * 160
	// maxLivenessAge bounds an age a follower may report.
	maxLivenessAge = time.Hour
)

// livenessBatch is a follower's liveness records: for each host it heard,
// how long ago (milliseconds, by its own clock, so the nodes' clocks need
// not agree).
type livenessBatch struct {
	AgesMS map[string]int64 `json:"ages_ms"`
}

func validateLiveness(b *livenessBatch) error {
	if len(b.AgesMS) > maxLivenessBatch {
		return fmt.Errorf("%d hosts: at most %d", len(b.AgesMS), maxLivenessBatch)
	}
	for h, age := range b.AgesMS {
		if !fsm.ValidName(h) {
			return fmt.Errorf("invalid host id %q", h)
		}
		if age < 0 || age > maxLivenessAge.Milliseconds() {
			return fmt.Errorf("host %s: age %d ms out of range", h, age)
		}
	}
	return nil
}

// internalLiveness takes a follower's liveness records (leader only).
func (s *Server) internalLiveness(w http.ResponseWriter, r *http.Request, _ Identity) {
	now := time.Now()
	data, err := io.ReadAll(io.LimitReader(r.Body, maxLivenessBody+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, wire.KindInvalidRequest, err.Error())
		return
	}
	var b livenessBatch
	if err := s.json.Decode(data, maxLivenessBody, &b); err != nil {
		writeError(w, http.StatusBadRequest, wire.KindInvalidRequest, err.Error())
		return
	}
	if err := validateLiveness(&b); err != nil {
		writeError(w, http.StatusBadRequest, wire.KindInvalidRequest, err.Error())
		return
	}
	batch := make(map[string]time.Time, len(b.AgesMS))
	for h, age := range b.AgesMS {
		batch[h] = now.Add(-time.Duration(age) * time.Millisecond)
	}
	if err := s.cfg.Store.Aggregate(batch); err != nil {
		kind := wire.KindInternal
		if errors.Is(err, store.ErrNotLeader) {
			kind = wire.KindNoLeader
		}
		writeError(w, statusOf(kind), kind, err.Error())
		return
	}
	writeJSON(w, struct{}{})
}

// ForwardLiveness sends, every interval until ctx ends, the hosts this
// node heard to the leader while it follows (the leader merges its own,
// see store.Heard). Records that do not reach the leader are kept for the
// next attempt.
func (s *Server) ForwardLiveness(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.cfg.Store.IsLeader() {
			continue
		}
		s.forwardLiveness(ctx)
	}
}

// forwardLiveness sends this node's pending records in batches.
func (s *Server) forwardLiveness(ctx context.Context) {
	pending := s.cfg.Store.TakeHeard()
	if len(pending) == 0 {
		return
	}
	now := time.Now()
	var batch livenessBatch
	send := func() bool {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := s.forward(rctx, pathInternalLiveness, batch, nil); err != nil {
			s.cfg.Logger.Debug("forward liveness", "err", err)
			return false
		}
		for h := range batch.AgesMS {
			delete(pending, h)
		}
		return true
	}
	for h, at := range pending {
		if batch.AgesMS == nil {
			batch.AgesMS = map[string]int64{}
		}
		batch.AgesMS[h] = min(max(now.Sub(at).Milliseconds(), 0), maxLivenessAge.Milliseconds())
		if len(batch.AgesMS) == maxLivenessBatch {
			if !send() {
				break
			}
			batch.AgesMS = nil
		}
	}
	if len(batch.AgesMS) > 0 && len(batch.AgesMS) < maxLivenessBatch {
		send()
	}
	if len(pending) > 0 {
		s.cfg.Store.ReturnHeard(maps.Clone(pending))
	}
}
