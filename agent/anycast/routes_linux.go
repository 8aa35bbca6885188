package anycast

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Config selects the anycast routes.
type Config struct {
	// Table is the kernel routing table the BGP daemon exports (e.g. 100).
	Table int
	// Prefixes optionally restricts the routes handled to those whose
	// destination lies within one of these prefixes. Empty means every
	// route in Table.
	Prefixes []netip.Prefix
	// NetNS optionally names the network namespace to work in (used by
	// tests). The zero value and netns.None() mean the current namespace.
	NetNS netns.NsHandle
}

var routeTypes = map[int]string{
	unix.RTN_UNICAST:     "unicast",
	unix.RTN_LOCAL:       "local",
	unix.RTN_BROADCAST:   "broadcast",
	unix.RTN_ANYCAST:     "anycast",
	unix.RTN_MULTICAST:   "multicast",
	unix.RTN_BLACKHOLE:   "blackhole",
	unix.RTN_UNREACHABLE: "unreachable",
	unix.RTN_PROHIBIT:    "prohibit",
	unix.RTN_THROW:       "throw",
	unix.RTN_NAT:         "nat",
}

func typeName(t int) string {
	if n, ok := routeTypes[t]; ok {
		return n
	}
	return fmt.Sprintf("type%d", t)
}

func typeNumber(name string) (int, error) {
	if name == "" {
		return unix.RTN_UNICAST, nil
	}
	for n, s := range routeTypes {
		if s == name {
			return n, nil
		}
	}
	var n int
	if _, err := fmt.Sscanf(name, "type%d", &n); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("unknown route type %q", name)
}

// Routes withdraws and restores the anycast routes of one kernel table.
type Routes struct {
	cfg Config
}

// NewRoutes returns a Routes for cfg. It fails when cfg.Table is not set.
func NewRoutes(cfg Config) (*Routes, error) {
	if cfg.Table <= 0 {
		return nil, errors.New("anycast: routing table must be set")
	}
	cfg.Prefixes = append([]netip.Prefix(nil), cfg.Prefixes...)
	return &Routes{cfg: cfg}, nil
}

func handle(ns netns.NsHandle, families ...int) (*netlink.Handle, error) {
	if ns == 0 {
		ns = netns.None()
	}
	h, err := netlink.NewHandleAt(ns, families...)
	if err != nil {
		return nil, fmt.Errorf("anycast: netlink handle: %w", err)
	}
	return h, nil
}

// matches reports whether dst lies within one of the configured prefixes.
func (r *Routes) matches(dst netip.Prefix) bool {
	if len(r.cfg.Prefixes) == 0 {
		return true
	}
	for _, p := range r.cfg.Prefixes {
		p = p.Masked()
		if p.Addr().BitLen() == dst.Addr().BitLen() && dst.Bits() >= p.Bits() && p.Contains(dst.Addr()) {
			return true
		}
	}
	return false
}

// list returns the matching kernel routes together with their journal form.
func (r *Routes) list(ctx context.Context, h *netlink.Handle) ([]netlink.Route, []Route, error) {
	var kern []netlink.Route
	var out []Route
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("anycast: list routes: %w", err)
		}
		rs, err := h.RouteListFiltered(fam, &netlink.Route{Table: r.cfg.Table}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return nil, nil, fmt.Errorf("anycast: list routes in table %d: %w", r.cfg.Table, err)
		}
		for _, kr := range rs {
			if kr.Table != r.cfg.Table {
				continue
			}
			rt, err := fromKernel(h, fam, kr)
			if err != nil {
				return nil, nil, err
			}
			if !r.matches(rt.Dst) {
				continue
			}
			kern = append(kern, kr)
			out = append(out, rt)
		}
	}
	return kern, out, nil
}

func fromKernel(h *netlink.Handle, fam int, kr netlink.Route) (Route, error) {
	var dst netip.Prefix
	if kr.Dst == nil {
		if fam == netlink.FAMILY_V4 {
			dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		} else {
			dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
	} else {
		a, ok := netip.AddrFromSlice(kr.Dst.IP)
		if !ok {
			return Route{}, fmt.Errorf("anycast: bad route destination %v", kr.Dst)
		}
		if fam == netlink.FAMILY_V4 {
			a = a.Unmap()
		}
		bits, _ := kr.Dst.Mask.Size()
		dst = netip.PrefixFrom(a, bits)
	}
	rt := Route{
		Dst:      dst,
		Table:    kr.Table,
		Protocol: int(kr.Protocol),
		Type:     typeName(kr.Type),
		Scope:    int(kr.Scope),
		Priority: kr.Priority,
	}
	if kr.Gw != nil {
		gw, ok := netip.AddrFromSlice(kr.Gw)
		if !ok {
			return Route{}, fmt.Errorf("anycast: bad gateway %v for %s", kr.Gw, dst)
		}
		if fam == netlink.FAMILY_V4 {
			gw = gw.Unmap()
		}
		rt.Gateway = gw
	}
	if kr.LinkIndex > 0 {
		l, err := h.LinkByIndex(kr.LinkIndex)
		if err != nil {
			return Route{}, fmt.Errorf("anycast: interface %d of route %s: %w", kr.LinkIndex, dst, err)
		}
		rt.Dev = l.Attrs().Name
	}
	return rt, nil
}

func toKernel(h *netlink.Handle, rt Route) (*netlink.Route, error) {
	if !rt.Dst.IsValid() {
		return nil, errors.New("anycast: route without destination")
	}
	typ, err := typeNumber(rt.Type)
	if err != nil {
		return nil, fmt.Errorf("anycast: route %s: %w", rt.Dst, err)
	}
	dst := rt.Dst.Masked()
	kr := &netlink.Route{
		Dst:      &net.IPNet{IP: net.IP(dst.Addr().AsSlice()), Mask: net.CIDRMask(dst.Bits(), dst.Addr().BitLen())},
		Table:    rt.Table,
		Protocol: netlink.RouteProtocol(rt.Protocol),
		Type:     typ,
		Scope:    netlink.Scope(rt.Scope),
		Priority: rt.Priority,
	}
	if dst.Addr().Is4() {
		kr.Family = netlink.FAMILY_V4
	} else {
		kr.Family = netlink.FAMILY_V6
	}
	if rt.Gateway.IsValid() {
		kr.Gw = net.IP(rt.Gateway.AsSlice())
	}
	if rt.Dev != "" {
		l, err := h.LinkByName(rt.Dev)
		if err != nil {
			return nil, fmt.Errorf("anycast: interface %q of route %s: %w", rt.Dev, rt.Dst, err)
		}
		kr.LinkIndex = l.Attrs().Index
	}
	return kr, nil
}

// List returns the anycast routes currently in the table.
func (r *Routes) List(ctx context.Context) ([]Route, error) {
	h, err := handle(r.cfg.NetNS, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	_, out, err := r.list(ctx, h)
	return out, err
}

// Withdraw deletes the anycast routes from the table and returns exactly the
// routes it removed, for the caller to journal. Calling it again when the
// routes are already gone removes and returns nothing. On error, the routes
// removed so far are returned along with the error.
func (r *Routes) Withdraw(ctx context.Context) ([]Route, error) {
	h, err := handle(r.cfg.NetNS, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	kern, rts, err := r.list(ctx, h)
	if err != nil {
		return nil, err
	}
	removed := make([]Route, 0, len(rts))
	for i := range kern {
		if err := ctx.Err(); err != nil {
			return removed, fmt.Errorf("anycast: withdraw: %w", err)
		}
		if err := h.RouteDel(&kern[i]); err != nil {
			if errors.Is(err, unix.ESRCH) {
				continue // already gone
			}
			return removed, fmt.Errorf("anycast: delete route %s: %w", rts[i], err)
		}
		removed = append(removed, rts[i])
	}
	return removed, nil
}

// Restore re-adds routes (typically from the journal) with replace
// semantics, so restoring routes that are already present is harmless.
func (r *Routes) Restore(ctx context.Context, routes []Route) error {
	if len(routes) == 0 {
		return nil
	}
	h, err := handle(r.cfg.NetNS, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer h.Close()
	var errs []error
	for _, rt := range routes {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("anycast: restore: %w", err)
		}
		kr, err := toKernel(h, rt)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := h.RouteReplace(kr); err != nil {
			errs = append(errs, fmt.Errorf("anycast: restore route %s: %w", rt, err))
		}
	}
	return errors.Join(errs...)
}
