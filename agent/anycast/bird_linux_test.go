package anycast

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const birdHostConf = `router id 10.99.0.1;
log "%s" all;
ipv4 table anycast4;
protocol device { scan time 1; }
protocol direct { ipv4; interface "veth-h"; }
protocol kernel kanycast {
	kernel table 100;
	scan time 1;
	learn;
	ipv4 { table anycast4; import all; export none; };
}
protocol pipe anycastpipe {
	table master4;
	peer table anycast4;
	import all;
	export none;
}
protocol bgp peer {
	local 10.99.0.1 as 65001;
	neighbor 10.99.0.2 as 65002;
	hold time 6;
	connect retry time 1;
	ipv4 { import none; export where net = 192.0.2.0/24; };
}
`

const birdPeerConf = `router id 10.99.0.2;
log "%s" all;
protocol device { scan time 1; }
protocol direct { ipv4; interface "veth-p"; }
protocol bgp host {
	local 10.99.0.2 as 65002;
	neighbor 10.99.0.1 as 65001;
	hold time 6;
	connect retry time 1;
	ipv4 { import all; export none; };
}
`

// startBird runs a BIRD 2 daemon in the foreground inside netns ns and
// returns its control socket path. The daemon is killed on cleanup.
func startBird(t *testing.T, ns, dir, name, conf string) string {
	t.Helper()
	cfg := filepath.Join(dir, name+".conf")
	logf := filepath.Join(dir, name+".log")
	sock := filepath.Join(dir, name+".sock")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(conf, logf)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, "bird", "-f", "-c", cfg, "-s", sock, "-P", filepath.Join(dir, name+".pid"))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start bird %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			l, _ := os.ReadFile(logf)
			t.Logf("bird %s output:\n%s\nlog:\n%s", name, out.String(), l)
		}
	})
	// Wait for the control socket.
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			return sock
		}
		select {
		case <-exited:
			t.Fatalf("bird %s exited: %s", name, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if i > 100 {
			t.Fatalf("bird %s: no control socket after 5s", name)
		}
	}
}

// peerHas reports whether the BIRD behind sock has a route for prefix.
func peerHas(t *testing.T, sock, prefix string) bool {
	t.Helper()
	out, err := exec.Command("birdc", "-s", sock, "show", "route", "for", prefix).CombinedOutput()
	if strings.Contains(string(out), "Network not found") {
		return false // birdc exits non-zero for this
	}
	if err != nil {
		t.Fatalf("birdc show route: %v\n%s", err, out)
	}
	return strings.Contains(string(out), prefix)
}

// waitPeer polls until the peer's RIB has (or lacks) prefix and returns how
// long that took.
func waitPeer(t *testing.T, sock, prefix string, want bool, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < timeout {
		if peerHas(t, sock, prefix) == want {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, _ := exec.Command("birdc", "-s", sock, "show", "route", "all").CombinedOutput()
	proto, _ := exec.Command("birdc", "-s", sock, "show", "protocols", "all").CombinedOutput()
	t.Fatalf("peer route %s present=%v not reached within %v\nroutes:\n%s\nprotocols:\n%s", prefix, want, timeout, out, proto)
	return 0
}

func TestBirdWithdrawRestore(t *testing.T) {
	requireRoot(t)
	for _, b := range []string{"bird", "birdc"} {
		if _, err := exec.LookPath(b); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not found (CI=true): %v", b, err)
			}
			t.Skipf("%s not found", b)
		}
	}
	hostNS, hostH := newNS(t, "bh")
	peerNS, _ := newNS(t, "bp")
	run(t, "ip", "-n", hostNS, "link", "add", "veth-h", "type", "veth", "peer", "name", "veth-p", "netns", peerNS)
	run(t, "ip", "-n", hostNS, "addr", "add", "10.99.0.1/30", "dev", "veth-h")
	run(t, "ip", "-n", peerNS, "addr", "add", "10.99.0.2/30", "dev", "veth-p")
	run(t, "ip", "-n", hostNS, "link", "set", "veth-h", "up")
	run(t, "ip", "-n", peerNS, "link", "set", "veth-p", "up")
	run(t, "ip", "-n", hostNS, "route", "add", "blackhole", "192.0.2.0/24", "table", "100")

	dir := t.TempDir()
	startBird(t, hostNS, dir, "host", birdHostConf)
	peerSock := startBird(t, peerNS, dir, "peer", birdPeerConf)

	const prefix = "192.0.2.0/24"
	learned := waitPeer(t, peerSock, prefix, true, 30*time.Second)
	t.Logf("peer learned %s after %v", prefix, learned)

	r, err := NewRoutes(Config{Table: 100, Prefixes: []netip.Prefix{netip.MustParsePrefix(prefix)}, NetNS: hostH})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	removed, err := r.Withdraw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0].Dst.String() != prefix {
		t.Fatalf("Withdraw removed %v", removed)
	}
	gone := waitPeer(t, peerSock, prefix, false, 15*time.Second)
	t.Logf("withdraw -> peer RIB lost %s after %v", prefix, gone)

	if err := r.Restore(ctx, removed); err != nil {
		t.Fatal(err)
	}
	back := waitPeer(t, peerSock, prefix, true, 15*time.Second)
	t.Logf("restore -> peer RIB has %s again after %v", prefix, back)
}
