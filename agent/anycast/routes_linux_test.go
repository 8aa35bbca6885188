package anycast

import (
	"context"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestRoutesWithdrawRestore(t *testing.T) {
	requireRoot(t)
	name, h := newNS(t, "rt")
	run(t, "ip", "-n", name, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1")
	run(t, "ip", "-n", name, "link", "set", "veth0", "up")
	run(t, "ip", "-n", name, "link", "set", "veth1", "up")
	run(t, "ip", "-n", name, "route", "add", "blackhole", "192.0.2.0/24", "table", "100")
	run(t, "ip", "-n", name, "-6", "route", "add", "blackhole", "2001:db8:1::/48", "table", "100")
	run(t, "ip", "-n", name, "route", "add", "203.0.113.0/24", "dev", "veth0", "table", "100", "proto", "static")
	// Not anycast: must survive a filtered withdraw.
	run(t, "ip", "-n", name, "route", "add", "blackhole", "198.51.100.0/24", "table", "100")

	ctx := context.Background()
	r, err := NewRoutes(Config{
		Table: 100,
		Prefixes: []netip.Prefix{
			netip.MustParsePrefix("192.0.2.0/24"),
			netip.MustParsePrefix("2001:db8::/32"),
			netip.MustParsePrefix("203.0.113.0/24"),
		},
		NetNS: h,
	})
	if err != nil {
		t.Fatal(err)
	}
	all, err := NewRoutes(Config{Table: 100, NetNS: h})
	if err != nil {
		t.Fatal(err)
	}

	want := []string{"192.0.2.0/24", "2001:db8:1::/48", "203.0.113.0/24"}
	listed, err := r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := dsts(listed); !slices.Equal(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}

	removed, err := r.Withdraw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := dsts(removed); !slices.Equal(got, want) {
		t.Fatalf("Withdraw removed %v, want %v", got, want)
	}
	byDst := map[string]Route{}
	for _, rt := range removed {
		byDst[rt.Dst.String()] = rt
		if rt.Table != 100 {
			t.Errorf("%s: table %d, want 100", rt.Dst, rt.Table)
		}
	}
	if rt := byDst["192.0.2.0/24"]; rt.Type != "blackhole" {
		t.Errorf("192.0.2.0/24: %+v, want blackhole", rt)
	}
	if rt := byDst["2001:db8:1::/48"]; rt.Type != "blackhole" {
		t.Errorf("2001:db8:1::/48: %+v, want blackhole", rt)
	}
	if rt := byDst["203.0.113.0/24"]; rt.Type != "unicast" || rt.Dev != "veth0" || rt.Protocol != 4 {
		t.Errorf("203.0.113.0/24: %+v, want unicast dev veth0 proto static", rt)
	}

	left, err := all.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := dsts(left); !slices.Equal(got, []string{"198.51.100.0/24"}) {
		t.Fatalf("after Withdraw table 100 holds %v, want only 198.51.100.0/24", got)
	}
	out := run(t, "ip", "-n", name, "-6", "route", "show", "table", "100")
	if strings.Contains(out, "2001:db8:1::/48") {
		t.Fatalf("IPv6 route still present: %s", out)
	}

	// Idempotent: nothing left to remove.
	again, err := r.Withdraw(ctx)
	if err != nil || len(again) != 0 {
		t.Fatalf("second Withdraw = %v, %v; want nothing", again, err)
	}

	// Journal round trip.
	data, err := json.Marshal(removed)
	if err != nil {
		t.Fatal(err)
	}
	var journaled []Route
	if err := json.Unmarshal(data, &journaled); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(journaled, removed) {
		t.Fatalf("JSON round trip:\n got %+v\nwant %+v\n%s", journaled, removed, data)
	}

	if err := r.Restore(ctx, journaled); err != nil {
		t.Fatal(err)
	}
	if err := r.Restore(ctx, journaled); err != nil {
		t.Fatalf("second Restore: %v", err)
	}
	back, err := r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back, removed) {
		t.Fatalf("after Restore:\n got %+v\nwant %+v", back, removed)
	}
	everything, err := all.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(everything) != 4 {
		t.Fatalf("table 100 after Restore: %v, want 4 routes", everything)
	}
}

func TestNewRoutesNeedsTable(t *testing.T) {
	if _, err := NewRoutes(Config{}); err == nil {
		t.Fatal("NewRoutes without a table succeeded")
	}
}

func dsts(rs []Route) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.Dst.String())
	}
	slices.Sort(out)
	return out
}
