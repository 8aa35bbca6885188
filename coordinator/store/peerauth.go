package store

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Peer authentication on the Raft port (DESIGN §3): a connection is handed
// to raft's NetworkTransport only once the other end has proved that it is
// kroll:peer:<id> for an id of the current Raft configuration. Under TLS
// the proof is the certificate's URI SAN, checked on accept and on dial;
// without TLS (loopback only) it is a challenge–response over the shared
// peer token, in both directions, before the Raft stream starts.

// ErrPeerRefused is wrapped by the errors of refused peer connections.
var ErrPeerRefused = errors.New("store: peer refused")

// PeerID returns the node id a certificate proves: its URI SAN
// kroll:peer:<id>, which must be its only kroll: URI.
func PeerID(cert *x509.Certificate) (string, error) {
	var kroll []string
	for _, u := range cert.URIs {
		if u.Scheme == "kroll" {
			kroll = append(kroll, u.Opaque)
		}
	}
	if len(kroll) != 1 {
		return "", fmt.Errorf("%w: certificate %q has %d kroll: URIs, want exactly one kroll:peer:<node-id>", ErrPeerRefused, cert.Subject.CommonName, len(kroll))
	}
	role, id, ok := strings.Cut(kroll[0], ":")
	if !ok || role != "peer" || id == "" || strings.Contains(id, ":") {
		return "", fmt.Errorf("%w: certificate URI kroll:%s is not kroll:peer:<node-id>", ErrPeerRefused, kroll[0])
	}
	return id, nil
}

// peerGate decides which node ids may speak Raft with this node: the
// servers of the latest Raft configuration (committed or not, so that a
// node being added by `cluster join` is reachable at once). A node that
// has no configuration yet (started with --join, waiting to be added)
// accepts only the nodes of Peers (Open refuses a joining node without
// another member there): never any node that proves some peer identity.
type peerGate struct {
	self  string
	peers map[string]string
	raft  atomic.Pointer[raft.Raft]
}

func (g *peerGate) servers() ([]raft.Server, bool) {
	r := g.raft.Load()
	if r == nil {
		// The transport listens before the node has loaded its
		// configuration: refuse, the peer retries.
		return nil, false
	}
	fut := r.GetConfiguration()
	if fut.Error() != nil {
		return nil, false
	}
	return fut.Configuration().Servers, true
}

// member reports whether id may connect to or be reached from this node.
func (g *peerGate) member(id string) bool {
	if id == "" {
		return false
	}
	servers, ok := g.servers()
	if !ok {
		return false
	}
	if len(servers) == 0 {
		_, listed := g.peers[id]
		return listed && id != g.self
	}
	for _, s := range servers {
		if string(s.ID) == id {
			return true
		}
	}
	return false
}

// expect checks that the node answering at address is id: the server the
// configuration lists at that address, else any member.
func (g *peerGate) expect(address, id string) error {
	servers, _ := g.servers()
	for _, s := range servers {
		if string(s.Address) == address {
			if string(s.ID) != id {
				return fmt.Errorf("%w: %s answered as %q, the configuration lists %q there", ErrPeerRefused, address, id, s.ID)
			}
			return nil
		}
	}
	if !g.member(id) {
		return fmt.Errorf("%w: %q at %s is not a member of the Raft configuration", ErrPeerRefused, id, address)
	}
	return nil
}

// verifyIncoming is the Raft listener's tls.Config.VerifyConnection.
func (g *peerGate) verifyIncoming(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("%w: no client certificate", ErrPeerRefused)
	}
	id, err := PeerID(cs.PeerCertificates[0])
	if err != nil {
		return err
	}
	if !g.member(id) {
		return fmt.Errorf("%w: %q is not a member of the Raft configuration", ErrPeerRefused, id)
	}
	return nil
}

// verifyOutgoing is the Raft dialer's tls.Config.VerifyConnection for a
// connection to address.
func (g *peerGate) verifyOutgoing(address string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("%w: no server certificate", ErrPeerRefused)
		}
		id, err := PeerID(cs.PeerCertificates[0])
		if err != nil {
			return err
		}
		return g.expect(address, id)
	}
}

// handshakeTimeout bounds the authentication of one Raft connection.
const handshakeTimeout = 5 * time.Second

// authConn runs a handshake before the first byte of the Raft stream is
// read or written (in raft's per-connection goroutine, so that a slow
// client never holds up Accept); a failed handshake closes the conn. Once
// the peer is no longer a member of the configuration (removed by
// `cluster remove`), its connection is cut before raft sees another byte.
type authConn struct {
	net.Conn
	once      sync.Once
	err       error
	peer      string
	handshake func(net.Conn) (string, error)
	gate      *peerGate
	log       *slog.Logger
}

func (c *authConn) authenticate() error {
	c.once.Do(func() {
		if c.peer, c.err = c.handshake(c.Conn); c.err != nil {
			c.log.Warn("refused raft connection", "remote", c.Conn.RemoteAddr().String(), "err", c.err)
			c.Conn.Close()
		}
	})
	return c.err
}

func (c *authConn) Read(b []byte) (int, error) {
	if err := c.authenticate(); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(b)
	if n > 0 && !c.gate.member(c.peer) {
		c.Conn.Close()
		return 0, fmt.Errorf("%w: %q is no longer a member of the Raft configuration", ErrPeerRefused, c.peer)
	}
	return n, err
}

func (c *authConn) Write(b []byte) (int, error) {
	if err := c.authenticate(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// tlsStream is a raft.StreamLayer over mutual TLS whose ends prove
// kroll:peer:<id> for a member id.
type tlsStream struct {
	net.Listener
	advertise net.Addr
	server    *tls.Config
	client    *tls.Config
	gate      *peerGate
	log       *slog.Logger
}

func newTLSStream(ln net.Listener, advertise net.Addr, cfg *tls.Config, gate *peerGate, log *slog.Logger) *tlsStream {
	server := cfg.Clone()
	server.ClientAuth = tls.RequireAndVerifyClientCert
	server.VerifyConnection = gate.verifyIncoming
	return &tlsStream{Listener: ln, advertise: advertise, server: server, client: cfg.Clone(), gate: gate, log: log}
}

func (t *tlsStream) Addr() net.Addr { return t.advertise }

func (t *tlsStream) Accept() (net.Conn, error) {
	conn, err := t.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := tls.Server(conn, t.server)
	return &authConn{Conn: tc, gate: t.gate, log: t.log, handshake: func(net.Conn) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
		defer cancel()
		if err := tc.HandshakeContext(ctx); err != nil {
			return "", fmt.Errorf("%w: %w", ErrPeerRefused, err)
		}
		// verifyIncoming checked this certificate in the handshake.
		return PeerID(tc.ConnectionState().PeerCertificates[0])
	}}, nil
}

func (t *tlsStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	cfg := t.client.Clone()
	cfg.VerifyConnection = t.gate.verifyOutgoing(string(address))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	d := &tls.Dialer{NetDialer: &net.Dialer{}, Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", string(address))
	if err != nil {
		return nil, fmt.Errorf("store: raft dial %s: %w", address, err)
	}
	return conn, nil
}

// The token handshake (no TLS, loopback only). D is the dialer, L the
// listener, N nonces of 32 random bytes, id a length-prefixed node id,
// K the peer token:
//
//	D → L  tokenMagic ‖ N_D ‖ id_D
//	L → D  N_L ‖ id_L ‖ HMAC-SHA256(K, "listener" ‖ N_D ‖ N_L ‖ id_D ‖ id_L)
//	D → L  HMAC-SHA256(K, "dialer" ‖ N_D ‖ N_L ‖ id_D ‖ id_L)
//	L → D  0x01
//
// Each side checks the other's MAC in constant time and that the other's
// id is a member (the dialer: the member at the address it dialed); fresh
// nonces on both sides make recorded handshakes worthless.
const (
	tokenMagic = "KROLL-RAFT-PEER/1\n"
	nonceSize  = 32
	maxIDLen   = 64
	tokenOK    = 0x01
)

// tokenStream is a raft.StreamLayer over TCP whose ends prove knowledge of
// the peer token and a member id before the Raft stream starts.
type tokenStream struct {
	net.Listener
	advertise net.Addr
	self      string
	token     []byte
	gate      *peerGate
	log       *slog.Logger
}

func (t *tokenStream) Addr() net.Addr { return t.advertise }

func (t *tokenStream) Accept() (net.Conn, error) {
	conn, err := t.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &authConn{Conn: conn, gate: t.gate, log: t.log, handshake: t.serverHandshake}, nil
}

func (t *tokenStream) mac(side string, nd, nl []byte, dialer, listener string) []byte {
	m := hmac.New(sha256.New, t.token)
	writeField(m, []byte(side))
	writeField(m, nd)
	writeField(m, nl)
	writeField(m, []byte(dialer))
	writeField(m, []byte(listener))
	return m.Sum(nil)
}

func writeField(h hash.Hash, b []byte) {
	h.Write([]byte{byte(len(b))})
	h.Write(b)
}

func readID(r io.Reader) (string, error) {
	var n [1]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return "", err
	}
	if n[0] == 0 || n[0] > maxIDLen {
		return "", fmt.Errorf("node id of %d bytes", n[0])
	}
	b := make([]byte, n[0])
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return string(b), nil
}

func appendID(b []byte, id string) []byte {
	return append(append(b, byte(len(id))), id...)
}

func (t *tokenStream) serverHandshake(conn net.Conn) (string, error) {
	id, err := t.serverProof(conn)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrPeerRefused, err)
	}
	return id, nil
}

func (t *tokenStream) serverProof(conn net.Conn) (string, error) {
	if len(t.token) == 0 {
		return "", errors.New("no peer token configured (auth.peer_token_file)")
	}
	if err := conn.SetDeadline(time.Now().Add(handshakeTimeout)); err != nil {
		return "", err
	}
	hello := make([]byte, len(tokenMagic)+nonceSize)
	if _, err := io.ReadFull(conn, hello); err != nil {
		return "", fmt.Errorf("reading the peer handshake: %w", err)
	}
	if subtle.ConstantTimeCompare(hello[:len(tokenMagic)], []byte(tokenMagic)) != 1 {
		return "", errors.New("not a kroll peer handshake")
	}
	nd := hello[len(tokenMagic):]
	idD, err := readID(conn)
	if err != nil {
		return "", fmt.Errorf("reading the peer handshake: %w", err)
	}
	nl := make([]byte, nonceSize)
	if _, err := rand.Read(nl); err != nil {
		return "", err
	}
	reply := appendID(append([]byte(nil), nl...), t.self)
	if _, err := conn.Write(append(reply, t.mac("listener", nd, nl, idD, t.self)...)); err != nil {
		return "", err
	}
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(conn, got); err != nil {
		return "", fmt.Errorf("reading the peer's proof: %w", err)
	}
	if !hmac.Equal(got, t.mac("dialer", nd, nl, idD, t.self)) {
		return "", fmt.Errorf("%q does not prove the peer token", idD)
	}
	if !t.gate.member(idD) {
		return "", fmt.Errorf("%q is not a member of the Raft configuration", idD)
	}
	if _, err := conn.Write([]byte{tokenOK}); err != nil {
		return "", err
	}
	return idD, conn.SetDeadline(time.Time{})
}

func (t *tokenStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", string(address), timeout)
	if err != nil {
		return nil, fmt.Errorf("store: raft dial %s: %w", address, err)
	}
	if err := t.clientHandshake(conn, string(address), timeout); err != nil {
		conn.Close()
		return nil, fmt.Errorf("store: raft dial %s: %w: %w", address, ErrPeerRefused, err)
	}
	return conn, nil
}

func (t *tokenStream) clientHandshake(conn net.Conn, address string, timeout time.Duration) error {
	if len(t.token) == 0 {
		return errors.New("no peer token configured (auth.peer_token_file)")
	}
	if err := conn.SetDeadline(time.Now().Add(min(timeout, handshakeTimeout))); err != nil {
		return err
	}
	nd := make([]byte, nonceSize)
	if _, err := rand.Read(nd); err != nil {
		return err
	}
	hello := appendID(append([]byte(tokenMagic), nd...), t.self)
	if _, err := conn.Write(hello); err != nil {
		return err
	}
	nl := make([]byte, nonceSize)
	if _, err := io.ReadFull(conn, nl); err != nil {
		return fmt.Errorf("reading the handshake: %w", err)
	}
	idL, err := readID(conn)
	if err != nil {
		return fmt.Errorf("reading the handshake: %w", err)
	}
	macL := make([]byte, sha256.Size)
	if _, err := io.ReadFull(conn, macL); err != nil {
		return fmt.Errorf("reading the handshake: %w", err)
	}
	if !hmac.Equal(macL, t.mac("listener", nd, nl, t.self, idL)) {
		return fmt.Errorf("%q does not prove the peer token", idL)
	}
	if err := t.gate.expect(address, idL); err != nil {
		return err
	}
	if _, err := conn.Write(t.mac("dialer", nd, nl, t.self, idL)); err != nil {
		return err
	}
	var ok [1]byte
	if _, err := io.ReadFull(conn, ok[:]); err != nil || ok[0] != tokenOK {
		return fmt.Errorf("%q refused this node (wrong peer token, or not a member)", idL)
	}
	return conn.SetDeadline(time.Time{})
}

// checkOwnCertificate makes sure this node's certificate proves its own
// id, so that a misconfigured node fails at start instead of being
// refused by every peer.
func checkOwnCertificate(cfg *tls.Config, nodeID string) error {
	if len(cfg.Certificates) == 0 || len(cfg.Certificates[0].Certificate) == 0 {
		return errors.New("store: TLS configuration without a certificate")
	}
	leaf := cfg.Certificates[0].Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cfg.Certificates[0].Certificate[0]); err != nil {
			return fmt.Errorf("store: own certificate: %w", err)
		}
	}
	id, err := PeerID(leaf)
	if err != nil {
		return fmt.Errorf("store: own certificate must carry the URI SAN kroll:peer:%s: %w", nodeID, err)
	}
	if id != nodeID {
		return fmt.Errorf("store: own certificate proves kroll:peer:%s, but this node is %s", id, nodeID)
	}
	return nil
}
