package api

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// TestForwardReusesConnections: a follower forwarding bursts of
// concurrent commands keeps its connections to the leader for the next
// burst instead of opening new ones (Go's default keeps only two idle).
func TestForwardReusesConnections(t *testing.T) {
	e := newEnv(t)
	var opened atomic.Int64
	leader := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, fsm.Result{Index: 7})
	}))
	leader.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			opened.Add(1)
		}
	}
	leader.Start()
	t.Cleanup(leader.Close)
	e.api = New(Config{Store: &followerOf{Store: e.store, leaderAddr: strings.TrimPrefix(leader.URL, "http://")}, Auth: testAuth(t), Logger: discardLogger, PeerToken: tokPeer})
	e.srv.Config.Handler = e.api

	const burst, rounds = 16, 4
	for range rounds {
		var wg sync.WaitGroup
		for range burst {
			wg.Go(func() {
				r := e.do(http.MethodPost, wire.PathSlotRelease, tokAgent, wire.SlotRequest{HostID: "h1", Datacenter: "fra", Token: 1})
				if r.status != http.StatusOK {
					t.Errorf("forwarded release: %d %s", r.status, r.body)
				}
			})
		}
		wg.Wait()
	}
	if n := opened.Load(); n > burst {
		t.Fatalf("%d connections opened to the leader for %d rounds of %d concurrent forwards; want at most %d (kept between rounds)", n, rounds, burst, burst)
	}
}
