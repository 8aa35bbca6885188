package anycast

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

var (
	_ Announcer = (*Routes)(nil)
	_ Drainer   = (*Drain)(nil)
)

// tcpEstablished is the kernel's TCP_ESTABLISHED socket state.
const tcpEstablished = 1

// DrainConfig selects the connections a Drain counts.
type DrainConfig struct {
	// Prefixes are the anycast prefixes: an established TCP connection
	// counts when its local address lies within one of them.
	Prefixes []netip.Prefix
	// NetNS optionally names the network namespace to look in (used by
	// tests). The zero value and netns.None() mean the current namespace.
	NetNS netns.NsHandle
}

// Drain counts established TCP connections to anycast addresses via
// sock_diag and waits for them to fall under a threshold.
type Drain struct {
	cfg DrainConfig
}

// NewDrain returns a Drain for cfg. It fails when no prefix is given.
func NewDrain(cfg DrainConfig) (*Drain, error) {
	if len(cfg.Prefixes) == 0 {
		return nil, errors.New("anycast: drain needs at least one anycast prefix")
	}
	ps := make([]netip.Prefix, len(cfg.Prefixes))
	for i, p := range cfg.Prefixes {
		ps[i] = p.Masked()
	}
	cfg.Prefixes = ps
	return &Drain{cfg: cfg}, nil
}

// PrefixesOf returns the destination prefixes of routes, e.g. to build a
// DrainConfig from what Routes.Withdraw removed.
func PrefixesOf(routes []Route) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(routes))
	for _, r := range routes {
		out = append(out, r.Dst)
	}
	return out
}

func (d *Drain) anycast(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range d.cfg.Prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Count returns the number of ESTABLISHED TCP connections (IPv4 and IPv6)
// whose local address is an anycast address.
func (d *Drain) Count(ctx context.Context) (int, error) {
	h, err := handle(d.cfg.NetNS, unix.NETLINK_INET_DIAG)
	if err != nil {
		return 0, err
	}
	defer h.Close()
	n := 0
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("anycast: count connections: %w", err)
		}
		socks, err := h.SocketDiagTCP(fam)
		if err != nil {
			// An interrupted dump is retried on the next poll; treat
			// it as an error so the caller does not act on a partial
			// count.
			return 0, fmt.Errorf("anycast: sock_diag family %d: %w", fam, err)
		}
		for _, s := range socks {
			if s.State != tcpEstablished {
				continue
			}
			a, ok := netip.AddrFromSlice(s.ID.Source)
			if ok && d.anycast(a) {
				n++
			}
		}
	}
	return n, nil
}

// Wait polls Count every poll interval until it is at most threshold
// (Drained, ReasonThreshold) or deadline has elapsed (ReasonDeadline, with
// the last count). Passing the deadline is not an error: the default policy
// is to proceed, and the caller logs it. Errors come from a cancelled ctx or
// a failing count.
func (d *Drain) Wait(ctx context.Context, threshold int, deadline, poll time.Duration) (DrainResult, error) {
	if poll <= 0 {
		poll = time.Second
	}
	start := time.Now()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	ticker := time.NewTicker(poll)
	defer ticker.Stop()
	for {
		n, err := d.Count(ctx)
		if err != nil {
			return DrainResult{Elapsed: time.Since(start)}, err
		}
		if n <= threshold {
			return DrainResult{Drained: true, Reason: ReasonThreshold, Count: n, Elapsed: time.Since(start)}, nil
		}
		select {
		case <-ctx.Done():
			return DrainResult{Count: n, Elapsed: time.Since(start)}, fmt.Errorf("anycast: drain wait: %w", ctx.Err())
		case <-timer.C:
			return DrainResult{Reason: ReasonDeadline, Count: n, Elapsed: time.Since(start)}, nil
		case <-ticker.C:
		}
	}
}
