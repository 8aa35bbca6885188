package client

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// Failover is the agent side of several coordinator nodes: a call that
// fails without an answer (network error, no leader, internal error) is
// tried on the next node; an answer (a grant or a refusal) is final. It
// remembers the node that answered last. An overloaded node's 429 is
// final too (the caller waits its Retry-After), and the next call starts
// at the following node.
type Failover struct {
	mu      sync.Mutex
	clients []*Client
	cur     int
}

// NewFailover returns a Failover over clients (at least one).
func NewFailover(clients ...*Client) (*Failover, error) {
	if len(clients) == 0 {
		return nil, errors.New("client: Failover needs at least one coordinator")
	}
	return &Failover{clients: clients}, nil
}

// try runs call on the current node and fails over to the others.
func try[T any](f *Failover, call func(*Client) (T, error)) (T, error) {
	f.mu.Lock()
	start := f.cur
	f.mu.Unlock()
	var (
		zero T
		errs []error
	)
	for i := range f.clients {
		idx := (start + i) % len(f.clients)
		v, err := call(f.clients[idx])
		kind := ErrorKind(err)
		if kind == wire.KindOverloaded {
			// An answer: the caller honours its Retry-After. The next
			// call starts at the next node, so a shed agent's load moves
			// off the overloaded one.
			f.mu.Lock()
			f.cur = (idx + 1) % len(f.clients)
			f.mu.Unlock()
			return v, err
		}
		if err == nil || (kind != "" && kind != wire.KindNoLeader && kind != wire.KindOutcomeUnknown && kind != wire.KindInternal) {
			f.mu.Lock()
			f.cur = idx
			f.mu.Unlock()
			return v, err
		}
		errs = append(errs, fmt.Errorf("%s: %w", f.clients[idx].BaseURL(), err))
	}
	return zero, errors.Join(errs...)
}

// Heartbeat sends a heartbeat.
func (f *Failover) Heartbeat(ctx context.Context, hb wire.Heartbeat) (*wire.DesiredState, error) {
	return try(f, func(c *Client) (*wire.DesiredState, error) { return c.Heartbeat(ctx, hb) })
}

// AcquireSlot asks for a slot.
func (f *Failover) AcquireSlot(ctx context.Context, req wire.SlotRequest) (*wire.Slot, error) {
	return try(f, func(c *Client) (*wire.Slot, error) { return c.AcquireSlot(ctx, req) })
}

// RenewSlot renews a held slot.
func (f *Failover) RenewSlot(ctx context.Context, req wire.SlotRequest) (*wire.Slot, error) {
	return try(f, func(c *Client) (*wire.Slot, error) { return c.RenewSlot(ctx, req) })
}

// AgentRelease gives a slot back.
func (f *Failover) AgentRelease(ctx context.Context, req wire.SlotRequest) error {
	_, err := try(f, func(c *Client) (struct{}, error) { return struct{}{}, c.AgentRelease(ctx, req) })
	return err
}

// ReportHealth reports a health verdict.
func (f *Failover) ReportHealth(ctx context.Context, rep wire.HealthReport) error {
	_, err := try(f, func(c *Client) (struct{}, error) { return struct{}{}, c.ReportHealth(ctx, rep) })
	return err
}
