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
	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/coordinator/store"
	"github.com/kroll-dev/kroll/pkg/buildinfo"
	"github.com/kroll-dev/kroll/pkg/cli"
)

func main() { cli.Main("kroll-coordinator", run) }

const usage = `--node-id ID --data-dir DIR --raft-addr HOST:PORT --http-addr HOST:PORT --peers ID=HOST:PORT,...
       [--join] [--config FILE] [--tls-cert FILE --tls-key FILE --tls-ca FILE]
       kroll-coordinator version`

func run(ctx context.Context, env cli.Env, args []string) error {
	if len(args) > 0 && (args[0] == "version" || args[0] == "--version") {
		fmt.Fprintln(env.Stdout, buildinfo.String(env.Name))
		return nil
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
	return serve(ctx, env, o, set)
}

func serve(ctx context.Context, env cli.Env, o options, set settings) error {
	log := cli.Logger(env.Stderr, slog.LevelInfo).With("node", o.nodeID)
	peers, _ := parsePeers(o.peers)
	serverTLS, peerTLS, err := tlsConfigs(o)
	if err != nil {
		return err
	}
	st, err := store.Open(store.Config{
		NodeID: o.nodeID, DataDir: o.dataDir, RaftAddr: o.raftAddr, HTTPAddr: o.httpAddr,
		Peers: peers, Join: o.join, TLS: peerTLS, Timing: set.timing, Logger: log,
	})
	if err != nil {
		return err
	}
	defer st.Close()
	cfg := api.Config{Store: st, Auth: set.auth, PeerToken: set.peerToken, Logger: log, HeartbeatInterval: set.heartbeatInterval, ReleaseKeys: set.releaseKeys, PolicyKeys: set.policyKeys}
	if peerTLS != nil {
		set.auth.AgentCertificates = true
		cfg.PeerScheme = "https"
		cfg.PeerClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: peerTLS}}
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

// tlsConfigs builds the HTTP server's TLS (client certificates verified
// when given; tokens work too) and the peer TLS used for Raft and for
// forwarding (mutual TLS with the node's certificate).
func tlsConfigs(o options) (server, peer *tls.Config, err error) {
	if o.tlsCert == "" {
		return nil, nil, nil
	}
	cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: %w", err)
	}
	caPEM, err := os.ReadFile(o.tlsCA)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, nil, fmt.Errorf("tls: %s holds no PEM certificates", o.tlsCA)
	}
	server = &tls.Config{
		Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven,
		MinVersion: tls.VersionTLS12,
	}
	peer = &tls.Config{
		Certificates: []tls.Certificate{cert}, ClientCAs: pool, RootCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
		MinVersion: tls.VersionTLS12,
	}
	return server, peer, nil
}
