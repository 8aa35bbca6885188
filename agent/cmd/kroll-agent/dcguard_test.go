package main

import (
	"context"
	"encoding/base64"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kroll-dev/kroll/agent/lifecycle"
	"github.com/kroll-dev/kroll/agent/running"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// TestGossipGivesLifecycleTheGuard: the agent's gossip pool is handed to
// the lifecycle as its datacenter view (agent/dcguard), which both
// reports the pool and guards the reboot.
func TestGossipGivesLifecycleTheGuard(t *testing.T) {
	key := filepath.Join(t.TempDir(), "gossip.key")
	if err := os.WriteFile(key, []byte(base64.StdEncoding.EncodeToString(make([]byte, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &config{hostID: "h1", datacenter: "fra1", gossipBindAddr: "127.0.0.1", gossipKeyFiles: []string{key}, kernel: running.ProcFS{}}
	var deps lifecycle.Config
	pool, err := startGossip(ctx, c, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), nil,
		func() string { return wire.PhaseIdle }, &deps)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pool.Shutdown() }()
	if deps.Local == nil {
		t.Fatal("no datacenter view for the lifecycle")
	}
	if v := deps.Local.View(); v == nil || *v != (wire.DCView{Alive: 1}) {
		t.Fatalf("View = %+v, want this host alive", v)
	}
	for _, tc := range []struct {
		name   string
		limits *wire.DatacenterLimits
		want   string
	}{
		{"alone with room", &wire.DatacenterLimits{EffectiveLimit: 1, MinHealthyPct: 0, Hosts: 1}, ""},
		{"floor of the registered hosts", &wire.DatacenterLimits{EffectiveLimit: 1, MinHealthyPct: 50, Hosts: 2}, "below the floor of 1"},
	} {
		err := deps.Local.Check(ctx, tc.limits)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: Check = %v, want %q", tc.name, err, tc.want)
		}
	}
}
