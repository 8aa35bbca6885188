// Command kroll-coordinator is one node of kroll's regional Raft quorum that
// hands out reboot slots per datacenter. See DESIGN §3 and the README.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/kroll-dev/kroll/coordinator/api"
	"github.com/kroll-dev/kroll/coordinator/feed"
	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/coordinator/store"
	"github.com/kroll-dev/kroll/pkg/buildinfo"
	"github.com/kroll-dev/kroll/pkg/cli"
)

func main() { cli.Main("kroll-coordinator", run) }

const usage = `--node-id ID --data-dir DIR --raft-addr HOST:PORT --http-addr HOST:PORT --peers ID=HOST:PORT,...
       [--join] [--config FILE] [--tls-cert FILE --tls-key FILE --tls-ca FILE [--peer-tls-ca FILE]]
       kroll-coordinator recover --node-id ID --data-dir DIR --peers ID=HOST:PORT,... [--dry-run]
       kroll-coordinator version`

func run(ctx context.Context, env cli.Env, args []string) error {
	if len(args) > 0 && (args[0] == "version" || args[0] == "--version") {
		fmt.Fprintln(env.Stdout, buildinfo.String(env.Name))
		return nil
	}
	if len(args) > 0 && args[0] == "recover" {
		return recoverCmd(ctx, env, args[1:])
	}
	fs := cli.NewFlagSet(env, env.Name, usage)
	var o options
	o.register(fs)
	if err := cli.Parse(fs, env.Stdout, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef("unexpected argument %q", fs.Arg(0))
	}
	if err := o.validate(); err != nil {
		return &cli.UsageError{Err: err}
	}
	set, err := loadConfig(o.config)
	if err != nil {
		return &cli.UsageError{Err: err}
	}
	if o.needsPeerToken() && set.peerToken == "" {
		return cli.Usagef("without TLS, Raft peers authenticate with the peer token: set auth.peer_token_file in --config (the same file on every node)")
	}
	return serve(ctx, env, o, set)
}

func serve(ctx context.Context, env cli.Env, o options, set settings) error {
	log := cli.Logger(env.Stderr, slog.LevelInfo).With("node", o.nodeID)
	peers, _ := parsePeers(o.peers)
	tc, err := tlsConfigs(o)
	if err != nil {
		return err
	}
	if tc.peer != nil && !tc.separatePeerCA {
		log.Warn("no --peer-tls-ca: the CA of --tls-ca, which signs the agents' client certificates, also vouches for peers (Raft and forwarding); give peer certificates a CA of their own")
	}
	metrics := api.NewMetrics(nil)
	st, err := store.Open(store.Config{
		NodeID: o.nodeID, DataDir: o.dataDir, RaftAddr: o.raftAddr, HTTPAddr: o.httpAddr,
		Peers: peers, Join: o.join, TLS: tc.peer, PeerToken: set.peerToken, Timing: set.timing, Logger: log,
		HeartbeatInterval: set.heartbeatInterval, Registerer: metrics.Registry(),
	})
	if err != nil {
		return err
	}
	defer st.Close()
	cfg := api.Config{Store: st, Auth: set.auth, PeerToken: set.peerToken, Logger: log, HeartbeatInterval: set.heartbeatInterval, ReleaseKeys: set.releaseKeys, PolicyKeys: set.policyKeys,
		Admission: set.admission, FleetLock: set.fleetLock, Metrics: metrics}
	if nets := set.fleetLock.AllowUnauthenticatedFrom; len(nets) > 0 {
		log.Warn("FleetLock open without credentials", "from", nets, "groups", set.fleetLock.Groups)
	}
	serverTLS := tc.server
	if tc.peer != nil {
		// Under TLS, peers prove kroll:peer:<id> with certificates only.
		set.auth.AgentCertificates, set.auth.PeerCertificates = true, true
		if tc.separatePeerCA {
			set.auth.PeerCAs, set.auth.ClientCAs = tc.peerCAs, tc.clientCAs
		}
		cfg.PeerToken, cfg.PeerTLS = "", tc.peer
	}
	ln, err := net.Listen("tcp", o.httpAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", o.httpAddr, err)
	}
	if serverTLS != nil {
		ln = tls.NewListener(ln, serverTLS)
	}
	handler := api.New(cfg)
	go handler.Announce(ctx, fsm.SetMember{ID: o.nodeID, RaftAddr: o.raftAddr, HTTPAddr: o.httpAddr})
	go handler.ForwardLiveness(ctx, time.Second)
	if len(set.feeds) > 0 {
		fm := feed.NewMetrics(metrics.Registry())
		for _, fc := range set.feeds {
			p, err := feed.New(fc, st, feed.Options{Logger: log, Metrics: fm})
			if err != nil {
				return err
			}
			// Every node runs the poller; only the leader polls.
			go p.Run(ctx)
		}
	}
	srv := &http.Server{
		Handler: handler, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("serving", "http", o.httpAddr, "raft", o.raftAddr, "tls", serverTLS != nil, "version", buildinfo.Version())
	// systemd (Type=notify): ready once the store is open and the API
	// listens; watchdog pings while the Raft node runs.
	defer cli.NotifyReady(ctx, log)()
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	return nil
}

// tlsSetup is the coordinator's TLS: the HTTP server's (client
// certificates verified when given; tokens work too) and the peer TLS used
// for Raft and for forwarding (mutual TLS with the node's certificate,
// verified against the peer CA).
type tlsSetup struct {
	server, peer       *tls.Config
	clientCAs, peerCAs *x509.CertPool
	separatePeerCA     bool
}

// tlsConfigs builds the TLS configurations from the flags (all nil
// without TLS).
func tlsConfigs(o options) (tlsSetup, error) {
	var ts tlsSetup
	if o.tlsCert == "" {
		return ts, nil
	}
	cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
	if err != nil {
		return ts, fmt.Errorf("tls: %w", err)
	}
	load := func(flag, path string, pools ...*x509.CertPool) error {
		pem, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("%s: %w", flag, err)
		}
		for _, p := range pools {
			if !p.AppendCertsFromPEM(pem) {
				return fmt.Errorf("%s: %s holds no PEM certificates", flag, path)
			}
		}
		return nil
	}
	// The HTTP server verifies client certificates of both CAs; the
	// api's Auth then holds each role to its own CA.
	ts.clientCAs, ts.peerCAs = x509.NewCertPool(), x509.NewCertPool()
	both := x509.NewCertPool()
	if err := load("--tls-ca", o.tlsCA, ts.clientCAs, both); err != nil {
		return ts, err
	}
	peerCA := o.tlsCA
	if o.peerTLSCA != "" {
		peerCA, ts.separatePeerCA = o.peerTLSCA, true
	}
	if err := load("--peer-tls-ca", peerCA, ts.peerCAs, both); err != nil {
		return ts, err
	}
	ts.server = &tls.Config{
		Certificates: []tls.Certificate{cert}, ClientCAs: both, ClientAuth: tls.VerifyClientCertIfGiven,
		MinVersion: tls.VersionTLS12,
	}
	ts.peer = &tls.Config{
		Certificates: []tls.Certificate{cert}, ClientCAs: ts.peerCAs, RootCAs: ts.peerCAs, ClientAuth: tls.RequireAndVerifyClientCert,
		MinVersion: tls.VersionTLS12,
	}
	return ts, nil
}
