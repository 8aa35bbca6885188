package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// FleetLock protocol (Fedora CoreOS Zincati, airlock): POST /v1/pre-reboot
// takes the node's lock in its group (a datacenter), POST /v1/steady-state
// releases it. Locks are owned and recursive; releasing a lock the node
// does not hold succeeds (nodes report steady state at every boot).

// fleetLockRequest checks the protocol header and decodes the body,
// writing the error response when it fails.
func (s *Server) fleetLockRequest(w http.ResponseWriter, r *http.Request) (wire.FleetLockClientParams, bool) {
	if r.Header.Get(wire.FleetLockHeader) != "true" {
		writeError(w, http.StatusBadRequest, wire.KindMissingHeader, "header "+wire.FleetLockHeader+": true is required")
		return wire.FleetLockClientParams{}, false
	}
	req, rerr := decode(&s.json, r, false, validateFleetLock)
	if rerr != nil {
		if rerr.kind == wire.KindInvalidRequest {
			rerr.kind = wire.KindInvalidClientParams
		}
		writeRequestError(w, rerr)
		return wire.FleetLockClientParams{}, false
	}
	return req.ClientParams, true
}

func (s *Server) preReboot(w http.ResponseWriter, r *http.Request, id Identity) {
	p, ok := s.fleetLockRequest(w, r)
	if !ok || !actsFor(w, id, p.ID) || !s.fleetLockGroupOpen(w, r, id, p) {
		return
	}
	acq := fsm.Acquire{Datacenter: p.Group, Host: p.ID, Owner: fsm.OwnerFleetLock, Stay: id.Via == viaNetwork, Timing: s.cfg.Store.Timing()}
	if _, ok := s.apply(w, r, fsm.TypeAcquire, acq); !ok {
		return
	}
	writeJSON(w, struct{}{})
}

func (s *Server) steadyState(w http.ResponseWriter, r *http.Request, id Identity) {
	p, ok := s.fleetLockRequest(w, r)
	if !ok || !actsFor(w, id, p.ID) || !s.fleetLockGroupOpen(w, r, id, p) {
		return
	}
	if _, ok := s.apply(w, r, fsm.TypeRelease, fsm.SlotRelease{Datacenter: p.Group, Host: p.ID, Owner: fsm.OwnerFleetLock}); !ok {
		return
	}
	writeJSON(w, struct{}{})
}

// viaNetwork is Identity.Via of a FleetLock request without credentials
// admitted for its source network.
const viaNetwork = "network"

// FleetLockAccess opens the two FleetLock endpoints (pre-reboot,
// steady-state) to clients without credentials, such as stock Zincati
// whose only setting is base_url, from the listed source networks. Only
// the TCP peer address counts (never X-Forwarded-For or the like); a
// request that carries credentials is authenticated as always, and every
// other endpoint still needs credentials.
type FleetLockAccess struct {
	// AllowUnauthenticatedFrom are the source networks; empty opens
	// nothing.
	AllowUnauthenticatedFrom []netip.Prefix
	// Groups, when not empty, limits those requests to these FleetLock
	// groups (datacenters): others are answered 403.
	Groups []string
}

// NewFleetLockAccess parses [fleetlock] allow_unauthenticated_from
// (CIDRs such as "10.0.0.0/8" or "2001:db8::/32") and groups (datacenter
// names), refusing anything ambiguous: a bare address, host bits set, an
// IPv4-mapped IPv6 network, a network of every address (/0), groups
// without networks.
func NewFleetLockAccess(cidrs, groups []string) (FleetLockAccess, error) {
	var a FleetLockAccess
	var errs []error
	for i, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		switch {
		case err != nil:
			if ip, aerr := netip.ParseAddr(c); aerr == nil {
				err = fmt.Errorf("%q is an address, not a network: write %s for this host alone", c, netip.PrefixFrom(ip, ip.BitLen()))
			}
			errs = append(errs, fmt.Errorf("allow_unauthenticated_from[%d]: %w", i, err))
		case p.Addr().Is4In6():
			errs = append(errs, fmt.Errorf("allow_unauthenticated_from[%d]: %q is an IPv4-mapped IPv6 network: write it as IPv4", i, c))
		case p.Masked() != p:
			errs = append(errs, fmt.Errorf("allow_unauthenticated_from[%d]: %q has host bits set: the network is %s", i, c, p.Masked()))
		case p.Bits() == 0:
			errs = append(errs, fmt.Errorf("allow_unauthenticated_from[%d]: %q would open FleetLock to every address: list the hosts' networks", i, c))
		default:
			a.AllowUnauthenticatedFrom = append(a.AllowUnauthenticatedFrom, p)
		}
	}
	for i, g := range groups {
		if err := checkName(fmt.Sprintf("groups[%d]", i), g); err != nil {
			errs = append(errs, err)
			continue
		}
		a.Groups = append(a.Groups, g)
	}
	if len(groups) > 0 && len(cidrs) == 0 {
		errs = append(errs, errors.New("groups limits the requests without credentials: it needs allow_unauthenticated_from"))
	}
	if err := errors.Join(errs...); err != nil {
		return FleetLockAccess{}, err
	}
	return a, nil
}

// source returns the request's TCP peer address when it lies in an
// allowed network.
func (a FleetLockAccess) source(r *http.Request) (netip.Addr, bool) {
	if len(a.AllowUnauthenticatedFrom) == 0 {
		return netip.Addr{}, false
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	ip := ap.Addr().Unmap()
	for _, p := range a.AllowUnauthenticatedFrom {
		if p.Contains(ip) {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// identify gives a request without credentials from an allowed network
// the agent role for the FleetLock endpoints.
func (a FleetLockAccess) identify(r *http.Request) (Identity, bool) {
	ip, ok := a.source(r)
	if !ok {
		return Identity{}, false
	}
	return Identity{Name: "fleetlock@" + ip.String(), Role: RoleAgent, Via: viaNetwork}, true
}

// fleetLockGroupOpen checks a request admitted for its source network
// against [fleetlock] groups and the host it names, and logs it. It
// writes 403 when its group is not open, 409 when it names a host a kroll
// agent registered or one registered in another datacenter: such a
// request may register a new FleetLock id, never move or act for a known
// host elsewhere (the state machine refuses both too, from format 4 on;
// checking here answers before anything is proposed).
func (s *Server) fleetLockGroupOpen(w http.ResponseWriter, r *http.Request, id Identity, p wire.FleetLockClientParams) bool {
	if id.Via != viaNetwork {
		return true
	}
	if g := s.cfg.FleetLock.Groups; len(g) > 0 && !slices.Contains(g, p.Group) {
		writeError(w, http.StatusForbidden, wire.KindForbidden, "group "+p.Group+" is not open to FleetLock without credentials ([fleetlock] groups)")
		return false
	}
	var (
		known, agent bool
		dc           string
	)
	s.cfg.Store.FSM().View(func(st *fsm.State) {
		if h := st.Hosts[p.ID]; h != nil {
			known, agent, dc = true, !h.FleetLock, h.Datacenter
		}
	})
	switch {
	case known && agent:
		s.cfg.Logger.Warn("fleetlock request without credentials for an agent's host refused", "path", r.URL.Path, "id", p.ID, "group", p.Group, "from", id.Name)
		writeError(w, http.StatusConflict, wire.KindConflict, "host "+p.ID+" is registered by a kroll agent: FleetLock without credentials cannot act for it")
		return false
	case known && dc != p.Group:
		s.cfg.Logger.Warn("fleetlock request without credentials naming another group refused", "path", r.URL.Path, "id", p.ID, "group", p.Group, "registered_in", dc, "from", id.Name)
		writeError(w, http.StatusConflict, wire.KindConflict, "host "+p.ID+" is registered in "+dc+", not "+p.Group+": FleetLock without credentials cannot move it (krollctl host remove it first, or let it expire)")
		return false
	}
	s.cfg.Logger.Info("fleetlock request without credentials", "path", r.URL.Path, "id", p.ID, "group", p.Group, "from", id.Name)
	return true
}
