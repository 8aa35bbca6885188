package gossip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// Tuned LAN defaults, used for the zero values of the Config tuning
// fields; see the package documentation for why.
const (
	DefaultGossipInterval   = 200 * time.Millisecond
	DefaultGossipNodes      = 4
	DefaultProbeInterval    = time.Second
	DefaultPushPullInterval = 15 * time.Second
	// DefaultRetransmitMult is the number of transmissions of a message
	// per member, times log10(members+1) rounded up.
	DefaultRetransmitMult = 6
	// DefaultDepartedRetention is how long View keeps reporting a dead or
	// left member that has not come back.
	DefaultDepartedRetention = time.Hour
)

// Other fixed settings.
const (
	// piggybackLimit is the largest message wire encoding sent as a UDP
	// packet (fits a 1500-byte MTU with memberlist's encryption, label
	// and framing). Larger messages go over TCP streams.
	piggybackLimit = 1100
	// deadNodeReclaimTime lets a host come back with another address once
	// its old incarnation has been dead this long.
	deadNodeReclaimTime = time.Minute
	// handoffQueueDepth is memberlist's queue of received messages
	// (default 1024): larger, to absorb the membership burst when a whole
	// DC starts at once instead of dropping alive messages.
	handoffQueueDepth = 4096
	// defaultUpdateTimeout bounds UpdateMeta when ctx has no deadline.
	defaultUpdateTimeout = 10 * time.Second
)

// Member states as reported in Member.State and the "state" label.
const (
	StateAlive   = "alive"
	StateSuspect = "suspect"
	StateDead    = "dead"
	StateLeft    = "left"
)

// ErrNoKeyring is returned (wrapped) by the key management methods of an
// insecure pool.
var ErrNoKeyring = errors.New("gossip pool is not encrypted")

// RejectError lets Config.Accept name the reason of a rejection; the
// reason labels kroll_gossip_messages_dropped_total (e.g. "signature",
// "version", "datacenter"). Other errors count as ReasonRejected.
type RejectError struct {
	// Reason is a short metric label value.
	Reason string
	// Err is the underlying error.
	Err error
}

// Error implements error.
func (e *RejectError) Error() string { return e.Reason + ": " + e.Err.Error() }

// Unwrap returns e.Err.
func (e *RejectError) Unwrap() error { return e.Err }

// Config configures a Pool.
type Config struct {
	// NodeName is the member's unique name: the host id.
	NodeName string
	// Datacenter names the pool. It is also the memberlist label
	// ("kroll/<datacenter>"), so members of different datacenters never
	// talk to each other even when misconfigured seeds point across.
	Datacenter string
	// BindAddr is the address to listen on (UDP and TCP); default
	// "0.0.0.0". Tests use 127.0.0.1.
	BindAddr string
	// BindPort is the port to listen on; 0 picks a free port (tests).
	BindPort int
	// AdvertiseAddr and AdvertisePort are the address others reach this
	// member at; optional (default: the bind address, or a private IP
	// when bound to 0.0.0.0, and the bound port).
	AdvertiseAddr string
	AdvertisePort int
	// Keyring holds AES keys (16, 24 or 32 bytes); the first is the
	// primary key used for sending, all are tried for receiving. Empty
	// means New refuses to start unless Insecure is set.
	Keyring [][]byte
	// Insecure allows an unencrypted, unauthenticated pool. For tests
	// only: anyone who can reach the port can then join the pool and
	// read its traffic (messages are still checked by Accept).
	Insecure bool
	// Meta returns this member's metadata; it is called when memberlist
	// announces the member (start, UpdateMeta). Nil: only HostID, set to
	// NodeName. An empty HostID is replaced by NodeName.
	Meta func() Meta
	// Accept is called for every new message (and every message learned
	// by push-pull) before it is delivered or re-broadcast: it verifies
	// signature, version and target datacenter. Returning an error drops
	// the message (logged at debug, counted by reason, see RejectError).
	// Calls are serialized. Required.
	Accept func(m Message) error
	// Deliver hands an accepted message to the agent, which applies it.
	// It is called from one goroutine (never concurrently), at most once
	// per (ID, Version); when versions of an ID arrive faster than they
	// are delivered only the newest is. This is where the agent measures
	// propagation latency (signed timestamp → in force), after applying.
	// Required.
	Deliver func(m Message)
	// State returns the messages this member currently holds (its
	// policies in force), sent to other members in push-pull syncs. Nil:
	// the newest version per ID of the messages this pool delivered or
	// broadcast.
	State func() []Message
	// Logger receives the pool's and memberlist's logs; nil discards.
	Logger *slog.Logger
	// Registerer registers the kroll_gossip_ metrics; nil: no metrics.
	// Shutdown unregisters them.
	Registerer prometheus.Registerer

	// Tuning; zero values are the Default* constants (see the package
	// documentation); they apply to memberlist and to the pool's own
	// dissemination of messages.
	GossipInterval, ProbeInterval, PushPullInterval time.Duration
	GossipNodes                                     int
	// RetransmitMult: see DefaultRetransmitMult.
	RetransmitMult int
	// DepartedRetention: see DefaultDepartedRetention.
	DepartedRetention time.Duration
}

// Pool is this member's handle on its datacenter's gossip pool.
type Pool struct {
	cfg       Config
	log       *slog.Logger
	ml        atomic.Pointer[memberlist.Memberlist]
	transport *countingTransport
	keyring   *memberlist.Keyring
	bq        *memberlist.TransmitLimitedQueue // messages to (re)transmit
	metrics   *metrics

	recvMu sync.Mutex // serializes receive: dedup, Accept, marking seen

	mu           sync.Mutex
	seen         map[string]int64       // newest version seen per ID
	held         map[string]Message     // newest accepted or broadcast per ID
	alive        map[string]aliveMember // from memberlist's events
	departed     map[string]departed
	pending      map[string]pendingDelivery
	pendingOrder []string

	wake     chan struct{}
	done     chan struct{}
	wg       sync.WaitGroup
	stopOnce sync.Once
	stopErr  error
	leaving  atomic.Bool

	localAddr string
}

// aliveMember is an alive (or suspect) member, copied from memberlist's
// events: memberlist updates the Nodes that Members returns in place,
// without synchronization, so the pool never reads those.
type aliveMember struct {
	member Member
	node   memberlist.Node // Name, Addr and Port only, for sending
}

type departed struct {
	member Member
	since  time.Time
}

type pendingDelivery struct {
	msg Message
	via string
}

// New creates this member's pool, listening on BindAddr:BindPort. Call
// Join to join the other members.
func New(cfg Config) (*Pool, error) {
	if cfg.NodeName == "" || cfg.Datacenter == "" {
		return nil, errors.New("gossip: NodeName and Datacenter are required")
	}
	if cfg.Accept == nil || cfg.Deliver == nil {
		return nil, errors.New("gossip: Accept and Deliver are required")
	}
	if len(cfg.Keyring) == 0 && !cfg.Insecure {
		return nil, errors.New("gossip: no keyring: refusing to start an unencrypted pool (set Insecure for tests)")
	}
	if cfg.BindAddr == "" {
		cfg.BindAddr = "0.0.0.0"
	}
	setDefault(&cfg.GossipInterval, DefaultGossipInterval)
	setDefault(&cfg.ProbeInterval, DefaultProbeInterval)
	setDefault(&cfg.PushPullInterval, DefaultPushPullInterval)
	setDefault(&cfg.GossipNodes, DefaultGossipNodes)
	setDefault(&cfg.RetransmitMult, DefaultRetransmitMult)
	setDefault(&cfg.DepartedRetention, DefaultDepartedRetention)
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("datacenter", cfg.Datacenter)

	p := &Pool{
		cfg:      cfg,
		log:      logger,
		seen:     map[string]int64{},
		held:     map[string]Message{},
		alive:    map[string]aliveMember{},
		departed: map[string]departed{},
		pending:  map[string]pendingDelivery{},
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	p.metrics = newMetrics(p)
	numNodes := func() int {
		if ml := p.ml.Load(); ml != nil {
			return ml.NumMembers()
		}
		return 1
	}
	p.bq = &memberlist.TransmitLimitedQueue{NumNodes: numNodes, RetransmitMult: cfg.RetransmitMult}

	if len(cfg.Keyring) > 0 {
		kr, err := memberlist.NewKeyring(cfg.Keyring, cfg.Keyring[0])
		if err != nil {
			return nil, fmt.Errorf("gossip: keyring: %w", err)
		}
		p.keyring = kr
	}

	stdLog := newStdLogger(logger)
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{cfg.BindAddr},
		BindPort:  cfg.BindPort,
		Logger:    stdLog,
	})
	if err != nil {
		return nil, fmt.Errorf("gossip: listen: %w", err)
	}
	p.transport = newCountingTransport(nt)

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.NodeName
	mc.Transport = p.transport
	mc.BindAddr = cfg.BindAddr
	mc.BindPort = nt.GetAutoBindPort()
	mc.AdvertiseAddr = cfg.AdvertiseAddr
	mc.AdvertisePort = cfg.AdvertisePort
	if cfg.AdvertiseAddr != "" && cfg.AdvertisePort == 0 {
		mc.AdvertisePort = mc.BindPort
	}
	mc.Label = "kroll/" + cfg.Datacenter
	mc.Keyring = p.keyring
	// GossipNodes and RetransmitMult apply to memberlist's membership
	// gossip too: with memberlist's 3 and 4, joins of 100-member pools
	// took minutes to reach every member in tests (lost alive messages
	// then wait for a push-pull), with 4 and 6 about 20 s.
	mc.GossipInterval = cfg.GossipInterval
	mc.ProbeInterval = cfg.ProbeInterval
	mc.PushPullInterval = cfg.PushPullInterval
	mc.DeadNodeReclaimTime = deadNodeReclaimTime
	mc.HandoffQueueDepth = handoffQueueDepth
	mc.EnableCompression = false
	mc.GossipNodes = cfg.GossipNodes
	mc.RetransmitMult = cfg.RetransmitMult
	mc.Delegate = delegate{p}
	mc.Events = events{p}
	mc.Logger = stdLog

	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = p.transport.Shutdown()
		return nil, fmt.Errorf("gossip: start memberlist: %w", err)
	}
	p.ml.Store(ml)
	local := ml.LocalNode() // read once: memberlist rewrites it on UpdateNode
	p.localAddr = net.JoinHostPort(local.Addr.String(), strconv.Itoa(int(local.Port)))

	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(p.metrics); err != nil {
			_ = ml.Shutdown()
			return nil, fmt.Errorf("gossip: register metrics: %w", err)
		}
	}
	p.wg.Add(2)
	go p.deliverLoop()
	go p.gossipLoop()
	return p, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Join contacts the given seeds (host:port; seeds from the configuration
// and the coordinator's host list), exchanging full state with each, and
// returns how many it reached. It fails only when it reached none.
func (p *Pool) Join(seeds []string) (int, error) {
	n, err := p.ml.Load().Join(seeds)
	if err != nil {
		return n, fmt.Errorf("gossip: join %d seeds: %w", len(seeds), err)
	}
	return n, nil
}

// Broadcast disseminates m, which the caller has verified and applies
// locally itself (Broadcast does not Deliver it). It refuses unknown
// kinds, messages over MaxMessageSize and versions older than the newest
// this pool has seen for m.ID, marks m as seen and queues it; a newer
// version of an ID replaces older queued ones.
func (p *Pool) Broadcast(m Message) error {
	if err := m.check(); err != nil {
		return fmt.Errorf("gossip: broadcast: %w", err)
	}
	p.mu.Lock()
	if v, ok := p.seen[m.ID]; ok && m.Version < v {
		p.mu.Unlock()
		return fmt.Errorf("gossip: broadcast %q version %d: %w %d", m.ID, m.Version, ErrStale, v)
	}
	p.seen[m.ID] = m.Version
	p.held[m.ID] = m
	if d, ok := p.pending[m.ID]; ok && d.msg.Version <= m.Version {
		delete(p.pending, m.ID)
	}
	p.mu.Unlock()
	p.queue(m.ID, m.Version, encodeMessage(m))
	return nil
}

// queue queues a wire encoding for (re)transmission.
func (p *Pool) queue(id string, version int64, wire []byte) {
	p.bq.QueueBroadcast(&broadcast{id: id, version: version, wire: wire})
}

// UpdateMeta re-announces Config.Meta() to the pool and waits until the
// announcement was sent to at least one member (or ctx ends; default
// timeout 10 s).
func (p *Pool) UpdateMeta(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("gossip: update meta: %w", err)
	}
	timeout := defaultUpdateTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	res := make(chan error, 1)
	go func() { res <- p.ml.Load().UpdateNode(timeout) }()
	select {
	case err := <-res:
		if err != nil {
			return fmt.Errorf("gossip: update meta: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("gossip: update meta: %w", ctx.Err())
	}
}

// View returns this member's view of the pool, members sorted by name.
// Dead and left members are kept for Config.DepartedRetention unless
// they come back.
func (p *Pool) View() View {
	v := View{ByPhase: map[string]int{}}
	now := time.Now()
	p.mu.Lock()
	for _, a := range p.alive {
		v.Members = append(v.Members, a.member)
	}
	for name, d := range p.departed {
		if now.Sub(d.since) > p.cfg.DepartedRetention {
			delete(p.departed, name)
			continue
		}
		v.Members = append(v.Members, d.member)
	}
	p.mu.Unlock()
	slices.SortFunc(v.Members, func(a, b Member) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	for _, m := range v.Members {
		switch m.State {
		case StateAlive:
			v.Alive++
			v.ByPhase[m.Meta.Phase]++
		case StateSuspect:
			v.Suspect++
		case StateDead:
			v.Dead++
		case StateLeft:
			v.Left++
		}
	}
	return v
}

func (p *Pool) decodeMeta(name string, b []byte) (Meta, bool) {
	m, leaving, err := decodeMeta(b)
	if err != nil {
		p.log.Debug("gossip: bad node meta", "node", name, "err", err)
	}
	return m, leaving
}

// LocalAddr returns the host:port this member is reached at (its
// advertised address; with a specific BindAddr, the bound address and
// port).
func (p *Pool) LocalAddr() string {
	return p.localAddr
}

// QueueDepth returns the number of messages waiting for (re)transmission.
func (p *Pool) QueueDepth() int {
	return p.bq.NumQueued()
}

// AddKey installs an additional key (16, 24 or 32 bytes) for receiving.
// Rotation: AddKey(new) on every member, then UseKey(new) on every
// member, then RemoveKey(old) on every member.
func (p *Pool) AddKey(key []byte) error {
	if p.keyring == nil {
		return fmt.Errorf("gossip: add key: %w", ErrNoKeyring)
	}
	if err := p.keyring.AddKey(key); err != nil {
		return fmt.Errorf("gossip: add key: %w", err)
	}
	return nil
}

// UseKey makes an installed key the primary key, used for sending.
func (p *Pool) UseKey(key []byte) error {
	if p.keyring == nil {
		return fmt.Errorf("gossip: use key: %w", ErrNoKeyring)
	}
	if err := p.keyring.UseKey(key); err != nil {
		return fmt.Errorf("gossip: use key: %w", err)
	}
	return nil
}

// RemoveKey removes a key that is not the primary key.
func (p *Pool) RemoveKey(key []byte) error {
	if p.keyring == nil {
		return fmt.Errorf("gossip: remove key: %w", ErrNoKeyring)
	}
	if err := p.keyring.RemoveKey(key); err != nil {
		return fmt.Errorf("gossip: remove key: %w", err)
	}
	return nil
}

// Leave announces that this member leaves the pool and waits up to
// timeout for the announcement to go out. Call Shutdown afterwards.
// Others see the member as "left" rather than "dead" when they got its
// last metadata update, which carries a leaving flag, before the leave
// itself (best effort: memberlist does not tell its delegates whether a
// member left or died).
func (p *Pool) Leave(timeout time.Duration) error {
	start := time.Now()
	p.leaving.Store(true)
	ml := p.ml.Load()
	if err := ml.UpdateNode(timeout); err != nil {
		p.log.Debug("gossip: announce leaving", "err", err)
	}
	if err := ml.Leave(max(timeout-time.Since(start), time.Millisecond)); err != nil {
		return fmt.Errorf("gossip: leave: %w", err)
	}
	return nil
}

// Shutdown stops the member without announcing it (others will see it as
// dead; call Leave first for a graceful exit), closes its sockets and
// unregisters its metrics. Pending deliveries are dropped. It is safe to
// call more than once.
func (p *Pool) Shutdown() error {
	p.stopOnce.Do(func() {
		close(p.done)
		if err := p.ml.Load().Shutdown(); err != nil {
			p.stopErr = fmt.Errorf("gossip: shutdown: %w", err)
		}
		p.wg.Wait()
		if p.cfg.Registerer != nil {
			p.cfg.Registerer.Unregister(p.metrics)
		}
	})
	return p.stopErr
}

// receive handles a message wire encoding from gossip or push-pull.
func (p *Pool) receive(wire []byte, via string) {
	m, err := decodeMessage(wire)
	if err != nil {
		reason := ReasonMalformed
		if errors.Is(err, ErrTooLarge) {
			reason = ReasonOversize
		}
		p.dropped(reason, m, err)
		return
	}
	if err := m.check(); err != nil {
		reason := ReasonMalformed
		if errors.Is(err, ErrUnknownKind) {
			reason = ReasonUnknownKind
		}
		p.dropped(reason, m, err)
		return
	}
	p.recvMu.Lock()
	defer p.recvMu.Unlock()
	p.mu.Lock()
	v, ok := p.seen[m.ID]
	p.mu.Unlock()
	switch {
	case ok && m.Version == v:
		p.metrics.drop(ReasonDuplicate)
		return
	case ok && m.Version < v:
		p.metrics.drop(ReasonStale)
		return
	}
	if err := p.cfg.Accept(m); err != nil {
		reason := ReasonRejected
		if re := (*RejectError)(nil); errors.As(err, &re) && re.Reason != "" {
			reason = re.Reason
		}
		p.dropped(reason, m, err)
		return
	}
	p.mu.Lock()
	if v, ok := p.seen[m.ID]; ok && m.Version <= v {
		// A concurrent local Broadcast of this or a newer version.
		p.mu.Unlock()
		p.metrics.drop(ReasonStale)
		return
	}
	p.seen[m.ID] = m.Version
	p.held[m.ID] = m
	if _, ok := p.pending[m.ID]; !ok {
		p.pendingOrder = append(p.pendingOrder, m.ID)
	}
	p.pending[m.ID] = pendingDelivery{msg: m, via: via}
	p.mu.Unlock()
	p.queue(m.ID, m.Version, wire)
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *Pool) dropped(reason string, m Message, err error) {
	p.metrics.drop(reason)
	p.log.Debug("gossip: message dropped", "reason", reason, "id", m.ID, "version", m.Version, "err", err)
}

// deliverLoop calls Deliver for accepted messages, one at a time.
func (p *Pool) deliverLoop() {
	defer p.wg.Done()
	for {
		select {
		case <-p.done:
			return
		case <-p.wake:
		}
		for {
			p.mu.Lock()
			if len(p.pendingOrder) == 0 {
				p.mu.Unlock()
				break
			}
			id := p.pendingOrder[0]
			p.pendingOrder = p.pendingOrder[1:]
			d, ok := p.pending[id]
			delete(p.pending, id)
			p.mu.Unlock()
			if !ok {
				continue // superseded by a local Broadcast
			}
			select {
			case <-p.done:
				return
			default:
			}
			p.cfg.Deliver(d.msg)
			p.metrics.deliver(d.via)
		}
	}
}

// gossipLoop disseminates the queued messages: every GossipInterval, to
// GossipNodes random members, each message up to its retransmission
// limit; messages up to piggybackLimit bytes as UDP packets, larger ones
// over TCP streams. memberlist also piggybacks the small ones on its own
// packets when they have room (GetBroadcasts), but its membership
// messages take precedence there, so during churn (say, a rolling
// reboot) that path alone could delay a push by seconds.
func (p *Pool) gossipLoop() {
	defer p.wg.Done()
	t := time.NewTicker(p.cfg.GossipInterval)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		if p.bq.NumQueued() == 0 {
			continue
		}
		ml := p.ml.Load()
		var targets []*memberlist.Node
		p.mu.Lock()
		for name, a := range p.alive {
			if name != p.cfg.NodeName {
				n := a.node
				targets = append(targets, &n)
			}
		}
		p.mu.Unlock()
		rand.Shuffle(len(targets), func(i, j int) { targets[i], targets[j] = targets[j], targets[i] })
		targets = targets[:min(len(targets), p.cfg.GossipNodes)]
		var wg sync.WaitGroup
		for _, n := range targets {
			msgs := p.bq.GetBroadcasts(0, maxStateBytes)
			var large [][]byte
			for _, msg := range msgs {
				if len(msg) > piggybackLimit {
					large = append(large, msg)
				} else if err := ml.SendBestEffort(n, msg); err != nil {
					p.log.Debug("gossip: send message", "to", n.Name, "err", err)
				}
			}
			if len(large) == 0 {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, msg := range large {
					if err := ml.SendReliable(n, msg); err != nil {
						p.log.Debug("gossip: send large message", "to", n.Name, "err", err)
					}
				}
			}()
		}
		wg.Wait()
	}
}

// broadcast is a queued message.
type broadcast struct {
	id      string
	version int64
	wire    []byte
}

// Invalidates implements memberlist.Broadcast: a version replaces older
// (and equal) queued versions of its ID.
func (b *broadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(*broadcast)
	return ok && o.id == b.id && o.version <= b.version
}

// Message implements memberlist.Broadcast.
func (b *broadcast) Message() []byte { return b.wire }

// Finished implements memberlist.Broadcast.
func (b *broadcast) Finished() {}

// delegate implements memberlist.Delegate for a Pool.
type delegate struct{ p *Pool }

// NodeMeta implements memberlist.Delegate.
func (d delegate) NodeMeta(limit int) []byte {
	var m Meta
	if d.p.cfg.Meta != nil {
		m = d.p.cfg.Meta()
	}
	if m.HostID == "" {
		m.HostID = d.p.cfg.NodeName
	}
	return encodeMeta(m, d.p.leaving.Load(), limit)
}

// NotifyMsg implements memberlist.Delegate.
func (d delegate) NotifyMsg(b []byte) {
	d.p.receive(slices.Clone(b), viaGossip)
}

// GetBroadcasts implements memberlist.Delegate.
func (d delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.p.bq.GetBroadcasts(overhead, limit)
}

// LocalState implements memberlist.Delegate.
func (d delegate) LocalState(join bool) []byte {
	p := d.p
	var msgs []Message
	if p.cfg.State != nil {
		msgs = p.cfg.State()
	} else {
		p.mu.Lock()
		for _, m := range p.held {
			msgs = append(msgs, m)
		}
		p.mu.Unlock()
	}
	state, skipped := encodeState(msgs)
	if skipped > 0 {
		p.log.Warn("gossip: messages left out of the push-pull state", "skipped", skipped)
	}
	return state
}

// MergeRemoteState implements memberlist.Delegate.
func (d delegate) MergeRemoteState(buf []byte, join bool) {
	wires, err := decodeState(buf)
	if err != nil {
		d.p.metrics.drop(ReasonBadState)
		d.p.log.Debug("gossip: remote state dropped", "err", err)
		return
	}
	for _, w := range wires {
		d.p.receive(w, viaPushPull)
	}
}

// events implements memberlist.EventDelegate for a Pool.
type events struct{ p *Pool }

// NotifyJoin implements memberlist.EventDelegate. memberlist calls the
// event methods with its node lock held, so reading n is safe here.
func (e events) NotifyJoin(n *memberlist.Node) {
	e.update(n)
}

// NotifyUpdate implements memberlist.EventDelegate.
func (e events) NotifyUpdate(n *memberlist.Node) {
	e.update(n)
}

func (e events) update(n *memberlist.Node) {
	meta, _ := e.p.decodeMeta(n.Name, n.Meta)
	a := aliveMember{
		member: Member{Name: n.Name, Addr: n.Address(), State: StateAlive, Meta: meta},
		node:   memberlist.Node{Name: n.Name, Addr: slices.Clone(n.Addr), Port: n.Port},
	}
	e.p.mu.Lock()
	delete(e.p.departed, n.Name)
	e.p.alive[n.Name] = a
	e.p.mu.Unlock()
}

// NotifyLeave implements memberlist.EventDelegate. The member is dead,
// or left if its last metadata carried the leaving flag.
func (e events) NotifyLeave(n *memberlist.Node) {
	meta, leaving := e.p.decodeMeta(n.Name, n.Meta)
	m := Member{Name: n.Name, Addr: n.Address(), State: StateDead, Meta: meta}
	if leaving {
		m.State = StateLeft
	}
	e.p.mu.Lock()
	delete(e.p.alive, n.Name)
	e.p.departed[n.Name] = departed{member: m, since: time.Now()}
	e.p.mu.Unlock()
}
