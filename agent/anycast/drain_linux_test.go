package anycast

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestDrainCountAndWait(t *testing.T) {
	requireRoot(t)
	name, h := newNS(t, "drain")
	run(t, "ip", "-n", name, "addr", "add", "192.0.2.1/32", "dev", "lo")
	run(t, "ip", "-n", name, "addr", "add", "10.77.0.1/32", "dev", "lo")
	run(t, "ip", "-n", name, "-6", "addr", "add", "2001:db8:1::1/128", "dev", "lo", "nodad")

	// n connections in all: n-2 over IPv4 and 2 over IPv6.
	const n = 5
	var (
		ln      net.Listener
		ln6     net.Listener
		other   net.Listener
		clients []net.Conn
		extra   net.Conn
	)
	inNS(t, h, func() {
		var err error
		if ln, err = net.Listen("tcp", "192.0.2.1:0"); err != nil {
			t.Errorf("listen: %v", err)
			return
		}
		if other, err = net.Listen("tcp", "10.77.0.1:0"); err != nil {
			t.Errorf("listen: %v", err)
			return
		}
		// Dial from a non-anycast source so only the accepted side has
		// an anycast local address.
		dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("10.77.0.1")}}
		for range n - 2 {
			c, err := dialer.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Errorf("dial: %v", err)
				return
			}
			clients = append(clients, c)
		}
		if ln6, err = net.Listen("tcp", "[2001:db8:1::1]:0"); err != nil {
			t.Errorf("listen: %v", err)
			return
		}
		dialer6 := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv6loopback}}
		for range 2 {
			c, err := dialer6.Dial("tcp", ln6.Addr().String())
			if err != nil {
				t.Errorf("dial: %v", err)
				return
			}
			clients = append(clients, c)
		}
		// A connection to a non-anycast address must not count.
		if extra, err = net.Dial("tcp", other.Addr().String()); err != nil {
			t.Errorf("dial: %v", err)
		}
	})
	t.Cleanup(func() {
		for _, c := range clients {
			_ = c.Close()
		}
		if extra != nil {
			_ = extra.Close()
		}
		if ln != nil {
			_ = ln.Close()
		}
		if ln6 != nil {
			_ = ln6.Close()
		}
		if other != nil {
			_ = other.Close()
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	var servers []net.Conn
	for i := range n {
		l := ln
		if i >= n-2 {
			l = ln6
		}
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		servers = append(servers, c)
	}
	oc, err := other.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = oc.Close()
		for _, c := range servers {
			_ = c.Close()
		}
	})

	d, err := NewDrain(DrainConfig{Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8:1::/48")}, NetNS: h})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	got, err := d.Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Only the accepted (server) side has an anycast local address.
	if got != n {
		t.Fatalf("Count = %d, want %d", got, n)
	}

	// Held connections: Wait gives up at the deadline.
	res, err := d.Wait(ctx, 1, 300*time.Millisecond, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.Drained || res.Reason != ReasonDeadline || res.Count != n {
		t.Fatalf("Wait with connections held = %+v, want deadline with count %d", res, n)
	}

	// Close three connections (two IPv4, one IPv6) shortly after Wait
	// starts; it returns once the count is at or under the threshold.
	go func() {
		time.Sleep(200 * time.Millisecond)
		for _, i := range []int{0, 1, n - 1} {
			_ = servers[i].Close()
			_ = clients[i].Close()
		}
	}()
	start := time.Now()
	res, err = d.Wait(ctx, 2, 10*time.Second, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Drained || res.Reason != ReasonThreshold || res.Count > 2 {
		t.Fatalf("Wait = %+v, want drained to <= 2", res)
	}
	if time.Since(start) < 150*time.Millisecond {
		t.Fatalf("Wait returned after %v, before the connections were closed", time.Since(start))
	}

	// A cancelled context is an error.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := d.Wait(cctx, 0, time.Second, 10*time.Millisecond); err == nil {
		t.Fatal("Wait with a cancelled context succeeded")
	}
}

func TestNewDrainNeedsPrefixes(t *testing.T) {
	if _, err := NewDrain(DrainConfig{}); err == nil {
		t.Fatal("NewDrain without prefixes succeeded")
	}
}
