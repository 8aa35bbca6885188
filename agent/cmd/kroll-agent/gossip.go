package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kroll-dev/kroll/agent/dcguard"
	"github.com/kroll-dev/kroll/agent/lifecycle"
	"github.com/kroll-dev/kroll/agent/policysync"
	"github.com/kroll-dev/kroll/pkg/gossip"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// readKeys reads the gossip keyring: one base64 key (16, 24 or 32 bytes)
// per file, the first being the primary.
func readKeys(paths []string) ([][]byte, error) {
	var keys [][]byte
	for i, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("gossip.key_files[%d]: %w", i, err)
		}
		k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, fmt.Errorf("gossip.key_files[%d]: not base64: %w", i, err)
		}
		switch len(k) {
		case 16, 24, 32:
		default:
			return nil, fmt.Errorf("gossip.key_files[%d]: %d-byte key, want 16, 24 or 32", i, len(k))
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// startGossip joins the datacenter's pool and wires it into the agent:
// policies from the pool go through the syncer, the agent's heartbeats
// carry the pool's view, and the guard reads it.
func startGossip(ctx context.Context, c *config, log *slog.Logger, reg prometheus.Registerer, syncer *policysync.Syncer,
	phase func() string, deps *lifecycle.Config) (*gossip.Pool, error) {
	keys, err := readKeys(c.gossipKeyFiles)
	if err != nil {
		return nil, err
	}
	kernel := ""
	if v, err := c.kernel.Version(); err == nil {
		kernel = v.String()
	}
	gc := gossip.Config{
		NodeName: c.hostID, Datacenter: c.datacenter, BindAddr: c.gossipBindAddr, BindPort: c.gossipBindPort,
		AdvertiseAddr: c.gossipAdvAddr, AdvertisePort: c.gossipAdvPort, Keyring: keys,
		Meta: func() gossip.Meta {
			m := gossip.Meta{HostID: c.hostID, Kernel: kernel, Phase: phase()}
			if syncer != nil {
				m.Policies = syncer.Versions()
			}
			return m
		},
		Logger: log.With("component", "gossip"), Registerer: reg,
	}
	if syncer != nil {
		gc.Accept, gc.Deliver, gc.State = syncer.Accept, syncer.Deliver, syncer.State
	} else {
		gc.Accept = func(gossip.Message) error { return fmt.Errorf("mitigations are disabled on this host") }
		gc.Deliver = func(gossip.Message) {}
	}
	pool, err := gossip.New(gc)
	if err != nil {
		return nil, err
	}
	if len(c.gossipSeeds) > 0 {
		// In the background: unreachable seeds must not delay READY (and
		// with it network-online.target).
		go func() {
			if n, err := pool.Join(c.gossipSeeds); err != nil {
				log.Warn("gossip: joining the configured seeds", "joined", n, "err", err)
			}
		}()
	}
	deps.Local = dcguard.New(pool, c.hostID)
	addr := pool.LocalAddr()
	prev := deps.OnDesired
	deps.OnDesired = func(ctx context.Context, ds *wire.DesiredState) {
		if prev != nil {
			prev(ctx, ds)
		}
		// Join through the coordinator's list of live peers while alone.
		if v := pool.View(); v.Alive <= 1 && len(ds.GossipSeeds) > 0 {
			if _, err := pool.Join(ds.GossipSeeds); err != nil {
				log.Debug("gossip: joining peers from the coordinator", "err", err)
			}
		}
	}
	deps.GossipAddr = addr
	go metaLoop(ctx, pool, phase, log)
	go keyReloader(ctx, pool, c.gossipKeyFiles, keys, log)
	log.Info("gossip pool started", "addr", addr, "encrypted", len(keys) > 0)
	return pool, nil
}

// metaLoop re-announces the node meta when the phase changes.
func metaLoop(ctx context.Context, pool *gossip.Pool, phase func() string, log *slog.Logger) {
	last := phase()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if p := phase(); p != last {
			last = p
			if err := pool.UpdateMeta(ctx); err != nil && ctx.Err() == nil {
				log.Warn("gossip: announcing the new phase", "err", err)
			}
		}
	}
}

// keyReloader rotates the keyring on SIGHUP: every key in the files is
// installed, the first becomes primary, keys no longer listed are removed.
// Rotate by adding the new key as a second file everywhere, then moving it
// first everywhere, then dropping the old one — a reload after each step.
func keyReloader(ctx context.Context, pool *gossip.Pool, files []string, current [][]byte, log *slog.Logger) {
	if len(files) == 0 {
		return
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var mu sync.Mutex
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		mu.Lock()
		keys, err := readKeys(files)
		if err == nil && len(keys) == 0 {
			err = fmt.Errorf("no keys")
		}
		if err != nil {
			log.Error("gossip: keyring reload refused", "err", err)
			mu.Unlock()
			continue
		}
		for _, k := range keys {
			if err := pool.AddKey(k); err != nil {
				log.Error("gossip: adding key", "err", err)
			}
		}
		if err := pool.UseKey(keys[0]); err != nil {
			log.Error("gossip: switching primary key", "err", err)
		}
		for _, old := range current {
			keep := false
			for _, k := range keys {
				keep = keep || string(k) == string(old)
			}
			if !keep {
				if err := pool.RemoveKey(old); err != nil {
					log.Error("gossip: removing key", "err", err)
				}
			}
		}
		current = keys
		log.Info("gossip: keyring reloaded", "keys", len(keys))
		mu.Unlock()
	}
}
