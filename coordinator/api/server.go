// Package api is the coordinator's HTTP server: the FleetLock protocol, the
// agent API, the operator API, cluster-internal forwarding of commands to
// the leader, /metrics, /healthz and /readyz.
//
// One file per endpoint; request decoding and validation live in
// request.go, errors in errors.go, authentication in auth.go. Every error
// is a wire.Error {kind, value} from a small fixed set of kinds.
package api

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/coordinator/store"
	"github.com/kroll-dev/kroll/pkg/strictjson"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// Store is what the server needs of the Raft node (coordinator/store).
type Store interface {
	Apply(ctx context.Context, typ fsm.Type, payload any) (fsm.Result, error)
	FSM() *fsm.FSM
	Timing() fsm.Timing
	NodeID() string
	IsLeader() bool
	Leader() (id, httpAddr string)
	Ready() bool
	// Current reports whether this node is part of a quorum with a
	// leader it heard from recently (see store.Store.Current).
	Current() bool
	Members() ([]wire.Member, error)
	WaitApplied(ctx context.Context, index uint64) error
	Join(ctx context.Context, req wire.JoinRequest) error
	Remove(ctx context.Context, id string) error
	Stats() map[string]string
	// Liveness (soft state, see store.Heard).
	Heard(host string, at time.Time)
	TakeHeard() map[string]time.Time
	ReturnHeard(batch map[string]time.Time)
	Aggregate(batch map[string]time.Time) error
}

// Config configures a Server.
type Config struct {
	Store Store
	Auth  *Auth
	// Forwarder sends commands to the leader; nil uses plain HTTP(S) with
	// PeerClient.
	PeerClient *http.Client
	// PeerScheme is "http" or "https" for forwarding to the leader.
	PeerScheme string
	// PeerTLS, when set, is this node's mutual TLS with its peers (its
	// certificate kroll:peer:<node-id>, the peer CA): forwarding then uses
	// HTTPS and talks only to a leader whose certificate proves
	// kroll:peer:<leader-id> (PeerClient and PeerScheme are derived).
	PeerTLS *tls.Config
	// PeerToken authenticates forwarded commands (role peer) when the
	// cluster runs without TLS client certificates.
	PeerToken string
	Logger    *slog.Logger
	Metrics   *Metrics
	// HeartbeatInterval is what agents are told to use.
	HeartbeatInterval time.Duration
	// Now is the clock for read views; time.Now when nil.
	Now func() time.Time
	// ReleaseKeys are the keys whose release signatures are accepted;
	// without any, adding a release is refused.
	ReleaseKeys []ed25519.PublicKey
	// PolicyKeys are the keys whose mitigation policy signatures are
	// accepted; without any, pushing a policy is refused.
	PolicyKeys []ed25519.PublicKey
	// Admission bounds the heartbeats and, separately, the slot, health
	// and FleetLock calls this node serves at once; zero fields take the
	// defaults.
	Admission Admission
	// FleetLock opens the FleetLock endpoints to clients without
	// credentials from some source networks (stock Zincati); the zero
	// value opens nothing.
	FleetLock FleetLockAccess
}

// Server serves the coordinator's HTTP API.
type Server struct {
	cfg Config
	mux *http.ServeMux
	// heartbeats and priority are the admission classes (see Admission).
	heartbeats, priority *admission
	// json decodes request bodies, remembering the request types.
	json strictjson.Decoder
}

// peerTransport is the transport of a node's calls to its peers (commands
// forwarded to the leader, liveness batches). It keeps as many idle
// connections to the leader as calls run at once under load: Go's default
// of 2 would close every other connection after its call and open a new
// one (a TCP and TLS handshake) for the next, just when the leader is
// busiest.
func peerTransport() *http.Transport {
	return &http.Transport{
		Proxy:               nil, // peers are never reached through a proxy
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 5 * time.Second,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
	}
}

// New returns a Server.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	if cfg.PeerTLS != nil {
		peerTLS := cfg.PeerTLS.Clone()
		peerTLS.VerifyConnection = s.verifyPeerServer
		tr := peerTransport()
		tr.TLSClientConfig = peerTLS
		cfg.PeerClient = &http.Client{Timeout: 10 * time.Second, Transport: tr}
		cfg.PeerScheme = "https"
	}
	if cfg.PeerClient == nil {
		cfg.PeerClient = &http.Client{Timeout: 10 * time.Second, Transport: peerTransport()}
	}
	if cfg.PeerScheme == "" {
		cfg.PeerScheme = "http"
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 10 * time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Auth == nil {
		cfg.Auth = &Auth{}
	}
	cfg.Admission = cfg.Admission.WithDefaults(cfg.HeartbeatInterval)
	s.cfg = cfg
	ad := cfg.Admission
	s.heartbeats = newAdmission(classHeartbeat, ad.HeartbeatConcurrency, ad.HeartbeatQueue, ad.HeartbeatQueueWait)
	s.priority = newAdmission(classPriority, ad.PriorityConcurrency, ad.PriorityQueue, ad.PriorityQueueWait)
	s.heartbeats.pressure = newPressure(ad.PressureTarget, ad.PressureMinRate)
	for _, c := range s.heartbeats.pressure.collectors() {
		if err := cfg.Metrics.reg.Register(c); err != nil {
			cfg.Logger.Warn("pressure metrics", "err", err) // a registry shared by several servers
		}
	}
	s.routes()
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// route registers pattern for role with the metrics and auth wrapper.
func (s *Server) route(pattern string, role Role, h func(w http.ResponseWriter, r *http.Request, id Identity)) {
	s.routeIn(nil, pattern, role, h)
}

// routeIn is route for a route of an admission class: authenticated
// requests past the class's capacity are shed (429) before h runs.
func (s *Server) routeIn(class *admission, pattern string, role Role, h func(w http.ResponseWriter, r *http.Request, id Identity)) {
	s.handle(class, pattern, role, nil, h)
}

// handle is routeIn with open, when not nil, giving requests without
// credentials an identity (or not): FleetLock from the configured source
// networks (FleetLockAccess).
func (s *Server) handle(class *admission, pattern string, role Role, open func(r *http.Request) (Identity, bool), h func(w http.ResponseWriter, r *http.Request, id Identity)) {
	s.mux.Handle(pattern, s.cfg.Metrics.instrument(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := s.cfg.Auth.Authenticate(r)
		if err != nil {
			writeError(w, http.StatusUnauthorized, wire.KindUnauthorized, err.Error())
			return
		}
		if id.Role == RoleNone && open != nil {
			if oid, ok := open(r); ok {
				id = oid
			}
		}
		if id.Role == RoleNone {
			writeError(w, http.StatusUnauthorized, wire.KindUnauthorized, "credentials required: a bearer token or a client certificate")
			return
		}
		if !id.Role.Allows(role) {
			writeError(w, http.StatusForbidden, wire.KindForbidden, "credentials "+id.String()+" lack role "+string(role))
			return
		}
		if role == RolePeer && id.Via == "certificate" && !s.isPeer(id.Name) {
			writeError(w, http.StatusForbidden, wire.KindForbidden, "credentials "+id.String()+": not a member of the Raft configuration")
			return
		}
		if class == nil {
			h(w, r, id)
			return
		}
		s.admitted(class, w, r, id, func() { h(w, r, id) })
	})))
}

func (s *Server) routes() {
	// FleetLock (Zincati / airlock protocol); without credentials from
	// the networks of [fleetlock] allow_unauthenticated_from.
	s.handle(s.priority, "POST "+wire.PathFleetLockPreReboot, RoleAgent, s.cfg.FleetLock.identify, s.preReboot)
	s.handle(s.priority, "POST "+wire.PathFleetLockSteady, RoleAgent, s.cfg.FleetLock.identify, s.steadyState)
	// Agent API: heartbeats are shed first; slot and health calls have
	// their own, separate admission.
	s.routeIn(s.heartbeats, "POST "+wire.PathHeartbeat, RoleAgent, s.heartbeat)
	s.routeIn(s.priority, "POST "+wire.PathSlotAcquire, RoleAgent, s.slotAcquire)
	s.routeIn(s.priority, "POST "+wire.PathSlotRenew, RoleAgent, s.slotRenew)
	s.routeIn(s.priority, "POST "+wire.PathSlotRelease, RoleAgent, s.slotRelease)
	s.routeIn(s.priority, "POST "+wire.PathHealth, RoleAgent, s.healthReport)
	// Operator API.
	s.route("GET "+wire.PathStatus, RoleRead, s.status)
	s.route("GET "+wire.PathMembers, RoleRead, s.members)
	s.route("POST "+wire.PathJoin, RoleAdmin, s.join)
	s.route("POST "+wire.PathRemove, RoleAdmin, s.remove)
	s.route("GET "+wire.PathDatacenters, RoleRead, s.datacenters)
	s.route("GET "+wire.PathDatacenter+"{name}", RoleRead, s.datacenter)
	s.route("PUT "+wire.PathDatacenter+"{name}", RoleOperate, s.setDatacenter)
	s.route("POST "+wire.PathDatacenter+"{name}"+wire.PathDatacenterPause, RoleOperate, s.pauseDatacenter)
	s.route("POST "+wire.PathDatacenter+"{name}"+wire.PathDatacenterResume, RoleOperate, s.resumeDatacenter)
	s.route("GET "+wire.PathSlots, RoleRead, s.slots)
	s.route("POST "+wire.PathSlotsRelease, RoleOperate, s.releaseSlot)
	s.route("GET "+wire.PathHosts, RoleRead, s.hosts)
	s.route("GET "+wire.PathHost+"{id}", RoleRead, s.host)
	s.route("POST "+wire.PathHost+"{id}"+wire.PathHostRemove, RoleOperate, s.removeHost)
	s.route("POST "+wire.PathHost+"{id}"+wire.PathHostLine, RoleOperate, s.setHostLine)
	s.route("GET "+wire.PathEvents, RoleRead, s.events)
	s.route("GET "+wire.PathReleases, RoleRead, s.releases)
	s.route("POST "+wire.PathReleases, RoleOperate, s.addRelease)
	s.route("GET "+wire.PathFeedBuilds, RoleRead, s.feedBuilds)
	s.route("GET "+wire.PathPolicies, RoleRead, s.policies)
	s.route("POST "+wire.PathPolicies, RoleOperate, s.pushPolicy)
	s.route("POST "+wire.PathPolicyRetire, RoleOperate, s.retirePolicy)
	s.route("GET "+wire.PathCVE+"{id}", RoleRead, s.cveShow)
	s.route("GET "+wire.PathRollouts, RoleRead, s.rollouts)
	s.route("POST "+wire.PathRollouts, RoleOperate, s.startRollout)
	s.route("GET "+wire.PathRollout+"{id}", RoleRead, s.rollout)
	s.route("POST "+wire.PathRollout+"{id}/pause", RoleOperate, s.rolloutAction(fsm.TypePauseRollout))
	s.route("POST "+wire.PathRollout+"{id}/resume", RoleOperate, s.rolloutAction(fsm.TypeResumeRollout))
	s.route("POST "+wire.PathRollout+"{id}/abort", RoleOperate, s.rolloutAction(fsm.TypeAbortRollout))
	s.route("GET "+wire.PathTrains, RoleRead, s.trains)
	s.route("GET "+wire.PathTrain+"{line}", RoleRead, s.train)
	s.route("PUT "+wire.PathTrain+"{line}", RoleOperate, s.setTrain)
	s.route("POST "+wire.PathTrain+"{line}/hold", RoleOperate, s.trainAction(fsm.TypeHoldTrain))
	s.route("POST "+wire.PathTrain+"{line}/resume", RoleOperate, s.trainAction(fsm.TypeResumeTrain))
	s.route("POST "+wire.PathTrain+"{line}/skip", RoleOperate, s.trainAction(fsm.TypeSkipTrain))
	s.route("POST "+wire.PathTrain+"{line}/expedite", RoleOperate, s.expediteTrain)
	s.route("POST "+wire.PathReleases+"/{id}"+wire.PathReleaseReject, RoleOperate, s.rejectRelease)
	s.route("GET "+wire.PathSnapshot, RoleOperate, s.snapshotSave)
	s.route("POST "+wire.PathSnapshot, RoleAdmin, s.snapshotRestore)
	// Cluster-internal.
	s.route("POST "+pathInternalApply, RolePeer, s.internalApply)
	s.route("POST "+pathInternalJoin, RolePeer, s.internalJoin)
	s.route("POST "+pathInternalLiveness, RolePeer, s.internalLiveness)
	s.route("GET "+pathInternalSnapshot, RolePeer, s.internalSnapshotSave)
	s.route("POST "+pathInternalSnapshot, RolePeer, s.internalSnapshotRestore)
	// Runtime profiles, admins only.
	s.route("GET "+pathDebugPprof+"{name...}", RoleAdmin, s.debugPprof)
	// Unauthenticated probes and metrics.
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", s.cfg.Metrics.Handler(s.cfg.Store))
	s.mux.HandleFunc("/", s.noRoute)
}

// noRoute answers requests that match no route: 405 with an Allow header
// when the path has routes for other methods, else 404.
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "/" && pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, http.StatusMethodNotAllowed, wire.KindMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path)
		return
	}
	writeError(w, http.StatusNotFound, wire.KindNotFound, "no route "+r.Method+" "+r.URL.Path)
}

// actsFor checks that an agent identified by certificate acts only for its
// own host; tokens and operators may act for any host.
func actsFor(w http.ResponseWriter, id Identity, host string) bool {
	if id.Via == "certificate" && id.Role == RoleAgent && id.Name != host {
		writeError(w, http.StatusForbidden, wire.KindForbidden, "certificate of "+id.Name+" cannot act for host "+host)
		return false
	}
	return true
}

// isPeer reports whether id is a member of the Raft configuration.
func (s *Server) isPeer(id string) bool {
	members, err := s.cfg.Store.Members()
	if err != nil {
		return false
	}
	for _, m := range members {
		if m.ID == id {
			return true
		}
	}
	return false
}

// verifyPeerServer is the forwarding client's tls.Config.VerifyConnection:
// the node answering must prove kroll:peer:<id> for a member id (forward
// then checks that it is the leader).
func (s *Server) verifyPeerServer(cs tls.ConnectionState) error {
	_, err := s.peerOf(cs)
	return err
}

// peerOf returns the member id a TLS connection's certificate proves.
func (s *Server) peerOf(cs tls.ConnectionState) (string, error) {
	if len(cs.PeerCertificates) == 0 {
		return "", errors.New("peer presented no certificate")
	}
	id, err := store.PeerID(cs.PeerCertificates[0])
	if err != nil {
		return "", err
	}
	if !s.isPeer(id) {
		return "", fmt.Errorf("%w: %q is not a member of the Raft configuration", store.ErrPeerRefused, id)
	}
	return id, nil
}
