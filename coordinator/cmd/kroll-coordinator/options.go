package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
)

// options are the command-line flags of DESIGN §3.
type options struct {
	nodeID, dataDir, raftAddr, httpAddr, peers, config string
	tlsCert, tlsKey, tlsCA, peerTLSCA                  string
	join                                               bool
}

func (o *options) register(fs *flag.FlagSet) {
	fs.StringVar(&o.nodeID, "node-id", "", "this node's id; must appear in --peers")
	fs.StringVar(&o.dataDir, "data-dir", "", "directory for the Raft log, stable store and snapshots")
	fs.StringVar(&o.raftAddr, "raft-addr", "", "HOST:PORT for Raft traffic")
	fs.StringVar(&o.httpAddr, "http-addr", "", "HOST:PORT for the HTTP API")
	fs.StringVar(&o.peers, "peers", "", "initial cluster: ID=HOST:PORT,... (the same on every node)")
	fs.StringVar(&o.config, "config", "", "TOML configuration file")
	fs.BoolVar(&o.join, "join", false, "a node added to a running cluster: do not bootstrap, wait for 'krollctl cluster join'; --peers lists members of the cluster, the only nodes it accepts until then")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "TLS certificate (PEM) for the HTTP API and Raft; must carry the URI SAN kroll:peer:<node-id>")
	fs.StringVar(&o.tlsKey, "tls-key", "", "TLS private key (PEM)")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "CA bundle (PEM) that client certificates (and peer certificates, without --peer-tls-ca) must chain to")
	fs.StringVar(&o.peerTLSCA, "peer-tls-ca", "", "CA bundle (PEM) that peer certificates (kroll:peer:<node-id>, Raft and forwarding) must chain to (default: --tls-ca)")
}

var nodeIDPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// parsePeers parses ID=HOST:PORT,... into a map.
func parsePeers(s string) (map[string]string, error) {
	peers := make(map[string]string)
	for _, p := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok {
			return nil, fmt.Errorf("--peers: %q is not ID=HOST:PORT", p)
		}
		if !nodeIDPattern.MatchString(id) {
			return nil, fmt.Errorf("--peers: invalid node id %q", id)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("--peers: %s: %w", id, err)
		}
		if _, dup := peers[id]; dup {
			return nil, fmt.Errorf("--peers: node id %q listed twice", id)
		}
		peers[id] = addr
	}
	return peers, nil
}

// isLoopback reports whether a listen address stays on this machine.
func isLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func (o *options) validate() error {
	var errs []error
	if !nodeIDPattern.MatchString(o.nodeID) {
		errs = append(errs, fmt.Errorf("--node-id: %q is not a valid id (lowercase letters, digits, '-')", o.nodeID))
	}
	if o.dataDir == "" {
		errs = append(errs, errors.New("--data-dir is required"))
	}
	for name, addr := range map[string]string{"--raft-addr": o.raftAddr, "--http-addr": o.httpAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q: want HOST:PORT", name, addr))
		}
	}
	peers, err := parsePeers(o.peers)
	others := 0
	for id := range peers {
		if id != o.nodeID {
			others++
		}
	}
	switch {
	case o.join && o.peers == "":
		errs = append(errs, errors.New("--join needs --peers listing at least one member of the cluster: until it is added, the node accepts only those on its Raft port"))
	case err != nil:
		errs = append(errs, err)
	case o.join && others == 0:
		errs = append(errs, errors.New("--join: --peers lists no member of the cluster other than --node-id"))
	case o.join && peers[o.nodeID] == "":
	case peers[o.nodeID] == "":
		errs = append(errs, fmt.Errorf("--peers does not list --node-id %q", o.nodeID))
	case peers[o.nodeID] != o.raftAddr:
		errs = append(errs, fmt.Errorf("--peers lists %s=%s but --raft-addr is %s", o.nodeID, peers[o.nodeID], o.raftAddr))
	}
	tls := 0
	for _, f := range []string{o.tlsCert, o.tlsKey, o.tlsCA} {
		if f != "" {
			tls++
		}
	}
	switch {
	case tls != 0 && tls != 3:
		errs = append(errs, errors.New("--tls-cert, --tls-key and --tls-ca go together"))
	case tls == 0 && o.peerTLSCA != "":
		errs = append(errs, errors.New("--peer-tls-ca needs --tls-cert, --tls-key and --tls-ca"))
	case tls == 0:
		for name, addr := range map[string]string{"--raft-addr": o.raftAddr, "--http-addr": o.httpAddr} {
			if addr != "" && !isLoopback(addr) {
				errs = append(errs, fmt.Errorf("%s %s is not a loopback address: without TLS (--tls-cert/--tls-key/--tls-ca) the coordinator listens on loopback only", name, addr))
			}
		}
	}
	return errors.Join(errs...)
}

// needsPeerToken reports whether, without TLS, this node talks Raft with
// other nodes (and so needs the peer token to prove itself).
func (o *options) needsPeerToken() bool {
	peers, _ := parsePeers(o.peers)
	return o.tlsCert == "" && (o.join || len(peers) > 1)
}
