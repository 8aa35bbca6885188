package gossip

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// countingTransport is a memberlist.NetTransport that counts the bytes it
// sends: UDP packets and writes on TCP streams, dialed or accepted. Every
// byte a pool sends is received by another member, so the sum over the
// members is the pool's gossip traffic.
type countingTransport struct {
	*memberlist.NetTransport
	packetBytes atomic.Uint64
	streamBytes atomic.Uint64
	streamCh    chan net.Conn
	done        chan struct{}
	stopOnce    sync.Once
	wg          sync.WaitGroup
}

var _ memberlist.NodeAwareTransport = (*countingTransport)(nil)

func newCountingTransport(nt *memberlist.NetTransport) *countingTransport {
	t := &countingTransport{
		NetTransport: nt,
		streamCh:     make(chan net.Conn),
		done:         make(chan struct{}),
	}
	t.wg.Add(1)
	go t.relayStreams()
	return t
}

// relayStreams wraps the accepted stream connections.
func (t *countingTransport) relayStreams() {
	defer t.wg.Done()
	in := t.NetTransport.StreamCh()
	for {
		select {
		case c := <-in:
			select {
			case t.streamCh <- &countingConn{Conn: c, n: &t.streamBytes}:
			case <-t.done:
				_ = c.Close()
				return
			}
		case <-t.done:
			return
		}
	}
}

// WriteTo implements memberlist.Transport.
func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	t.packetBytes.Add(uint64(len(b)))
	return t.NetTransport.WriteTo(b, addr)
}

// WriteToAddress implements memberlist.NodeAwareTransport.
func (t *countingTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	t.packetBytes.Add(uint64(len(b)))
	return t.NetTransport.WriteToAddress(b, a)
}

// DialTimeout implements memberlist.Transport.
func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := t.NetTransport.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: &t.streamBytes}, nil
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *countingTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := t.NetTransport.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: &t.streamBytes}, nil
}

// StreamCh implements memberlist.Transport.
func (t *countingTransport) StreamCh() <-chan net.Conn {
	return t.streamCh
}

// Shutdown implements memberlist.Transport. The relay keeps forwarding
// while the NetTransport shuts down: its listeners block on handing over
// connections until they exit.
func (t *countingTransport) Shutdown() error {
	err := t.NetTransport.Shutdown()
	t.stopOnce.Do(func() { close(t.done) })
	t.wg.Wait()
	return err
}

// sentBytes returns the bytes sent in packets and on streams.
func (t *countingTransport) sentBytes() (packet, stream uint64) {
	return t.packetBytes.Load(), t.streamBytes.Load()
}

// countingConn counts the bytes written to a connection.
type countingConn struct {
	net.Conn
	n *atomic.Uint64
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.n.Add(uint64(n))
	return n, err
}
