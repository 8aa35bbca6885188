package store

import (
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestPeerID checks which certificate URI SANs prove a peer identity.
func TestPeerID(t *testing.T) {
	for _, tc := range []struct {
		name string
		uris []string
		want string
	}{
		{"peer", []string{"kroll:peer:c1"}, "c1"},
		{"peer-and-other-scheme", []string{"spiffe://x/y", "kroll:peer:c2"}, "c2"},
		{"agent", []string{"kroll:agent:h1"}, ""},
		{"admin", []string{"kroll:admin:ops"}, ""},
		{"none", nil, ""},
		{"empty-id", []string{"kroll:peer:"}, ""},
		{"nested", []string{"kroll:peer:c1:x"}, ""},
		{"two-identities", []string{"kroll:peer:c1", "kroll:agent:h1"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert := &x509.Certificate{}
			for _, s := range tc.uris {
				u, err := url.Parse(s)
				if err != nil {
					t.Fatal(err)
				}
				cert.URIs = append(cert.URIs, u)
			}
			got, err := PeerID(cert)
			if got != tc.want || (err == nil) != (tc.want != "") {
				t.Fatalf("PeerID = %q, %v; want %q", got, err, tc.want)
			}
			if err != nil && !errors.Is(err, ErrPeerRefused) {
				t.Fatalf("error %v does not wrap ErrPeerRefused", err)
			}
		})
	}
}

// TestTokenHandshake dials a node's Raft port (no TLS) with the peer-token
// handshake as members, non-members and holders of a wrong token, and
// dials an impostor that answers at a member's address.
func TestTokenHandshake(t *testing.T) {
	const token = "peer-token-for-store-tests"
	peers := freePeers(t, 3)
	// c1 runs alone; its configuration (bootstrapped from peers) names
	// c2 and c3, which are not running.
	s, err := Open(Config{NodeID: "c1", DataDir: t.TempDir(), RaftAddr: peers["c1"], HTTPAddr: "127.0.0.1:1", Peers: peers, PeerToken: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for deadline := time.Now().Add(5 * time.Second); !s.IsPeer("c2"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("c1 does not know its configuration")
		}
	}
	// An impostor that knows the token answers as c3 at c2's address.
	ln, err := net.Listen("tcp", peers["c2"])
	if err != nil {
		t.Fatal(err)
	}
	impostor := &tokenStream{Listener: ln, advertise: ln.Addr(), self: "c3", token: []byte(token), gate: s.gate, log: s.cfg.Logger}
	t.Cleanup(func() { impostor.Close() })
	go func() {
		for {
			c, err := impostor.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	for _, tc := range []struct {
		name, self, token, addr string
		ok                      bool
		inErr                   string
	}{
		{"member-with-token", "c2", token, peers["c1"], true, ""},
		{"wrong-token", "c2", "not-the-peer-token-at-all", peers["c1"], false, "does not prove the peer token"},
		{"no-token", "c2", "", peers["c1"], false, "no peer token"},
		{"non-member-with-token", "c9", token, peers["c1"], false, "refused this node"},
		{"impostor-at-member-address", "c1", token, peers["c2"], false, `answered as "c3"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &tokenStream{self: tc.self, token: []byte(tc.token), gate: s.gate, log: s.cfg.Logger}
			conn, err := d.Dial(raft.ServerAddress(tc.addr), 2*time.Second)
			if (err == nil) != tc.ok {
				t.Fatalf("dial: %v, want ok=%v", err, tc.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrPeerRefused) || !strings.Contains(err.Error(), tc.inErr) {
					t.Fatalf("error %v: want ErrPeerRefused and %q", err, tc.inErr)
				}
				return
			}
			conn.Close()
		})
	}
	// A dialer that cannot prove the token gets no acknowledgement.
	t.Run("wrong-proof", func(t *testing.T) {
		conn, err := net.Dial("tcp", peers["c1"])
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(handshakeTimeout + 2*time.Second))
		conn.Write(appendID(append([]byte(tokenMagic), make([]byte, nonceSize)...), "c2"))
		reply := make([]byte, nonceSize+1+len("c1")+32)
		if _, err := io.ReadFull(conn, reply); err != nil {
			t.Fatal(err)
		}
		conn.Write(make([]byte, 32))
		if n, err := conn.Read(make([]byte, 1)); err == nil {
			t.Fatalf("read %d bytes (an acknowledgement), want the connection closed", n)
		}
	})
	// A client that skips the handshake is cut off.
	t.Run("no-handshake", func(t *testing.T) {
		conn, err := net.Dial("tcp", peers["c1"])
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.Write([]byte("\x01\x82\xa4Term\xcf\xff\xff\xff\xff\xff\xff\xff\xff" + string(make([]byte, 64))))
		conn.SetReadDeadline(time.Now().Add(handshakeTimeout + 2*time.Second))
		if n, err := conn.Read(make([]byte, 64)); err == nil {
			t.Fatalf("read %d bytes of an answer, want the connection closed", n)
		}
	})
}

// TestJoiningNodeAcceptsOnlyItsPeers: a node started with Join and no
// configuration yet accepts on its Raft port only the nodes its Peers
// list, not any node that proves some peer identity; and it refuses to
// start without another member in Peers.
func TestJoiningNodeAcceptsOnlyItsPeers(t *testing.T) {
	const token = "peer-token-for-store-tests"
	self := freePort(t)
	for _, peers := range []map[string]string{nil, {"c4": self}} {
		if s, err := Open(Config{NodeID: "c4", DataDir: t.TempDir(), RaftAddr: self, Join: true, Peers: peers, PeerToken: token}); err == nil {
			s.Close()
			t.Fatalf("joining node with Peers %v started", peers)
		}
	}
	s, err := Open(Config{NodeID: "c4", DataDir: t.TempDir(), RaftAddr: self, HTTPAddr: "127.0.0.1:1", Join: true,
		Peers: map[string]string{"c1": freePort(t)}, PeerToken: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for deadline := time.Now().Add(5 * time.Second); !s.IsPeer("c1"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("joining node does not accept c1 of its Peers")
		}
	}
	for _, tc := range []struct {
		id string
		ok bool
	}{{"c1", true}, {"c2", false}, {"c9", false}, {"c4", false}} {
		// IsPeer is the gate both Raft streams ask on accept (see
		// TestTokenHandshake, TestRaftOverMutualTLS).
		if s.IsPeer(tc.id) != tc.ok {
			t.Errorf("joining node accepts %s: %v, want %v", tc.id, !tc.ok, tc.ok)
		}
	}
}
