package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// shedder answers heartbeats with status and Retry-After and every other
// route 200; it counts the requests per path.
type shedder struct {
	mu         sync.Mutex
	status     int
	retryAfter string
	calls      map[string]int
}

func (s *shedder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[r.URL.Path]++
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path != wire.PathHeartbeat || s.status == http.StatusOK {
		io.WriteString(w, `{"heartbeat_interval_seconds":10}`)
		return
	}
	if s.retryAfter != "" {
		w.Header().Set("Retry-After", s.retryAfter)
	}
	w.WriteHeader(s.status)
	kind := wire.KindOverloaded
	if s.status == http.StatusServiceUnavailable {
		kind = wire.KindNoLeader
	}
	io.WriteString(w, `{"kind":"`+kind+`","value":"busy"}`)
}

func (s *shedder) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[path]
}

func newShedder(t *testing.T, status int, retryAfter string) (*shedder, *Client) {
	t.Helper()
	s := &shedder{status: status, retryAfter: retryAfter, calls: map[string]int{}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

// TestRetryAfterHonoured: a 429 (or 503) with Retry-After makes the
// client refuse calls of that route until it passed, without sending
// them; other routes go on.
func TestRetryAfterHonoured(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC)
	tests := []struct {
		name       string
		status     int
		header     string
		wantKind   string
		wantRetry  time.Duration
		wantGated  bool
		advanceTo  time.Duration // then the route is open again
		wantStatus int
	}{
		{"seconds", 429, "7", wire.KindOverloaded, 7 * time.Second, true, 7 * time.Second, 429},
		{"http date", 429, now.Add(30 * time.Second).Format(http.TimeFormat), wire.KindOverloaded, 30 * time.Second, true, 30 * time.Second, 429},
		{"capped", 429, "86400", wire.KindOverloaded, MaxRetryAfter, true, MaxRetryAfter, 429},
		{"503 with Retry-After", 503, "2", wire.KindNoLeader, 2 * time.Second, true, 2 * time.Second, 503},
		{"no header", 429, "", wire.KindOverloaded, 0, false, 0, 429},
		{"garbage", 429, "soon", wire.KindOverloaded, 0, false, 0, 429},
		{"negative", 429, "-5", wire.KindOverloaded, 0, false, 0, 429},
		{"date in the past", 429, now.Add(-time.Minute).Format(http.TimeFormat), wire.KindOverloaded, 0, false, 0, 429},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, c := newShedder(t, tc.status, tc.header)
			clock := now
			c.now = func() time.Time { return clock }
			_, err := c.Heartbeat(ctx, wire.Heartbeat{HostID: "h1", Datacenter: "fra"})
			if ErrorKind(err) != tc.wantKind || RetryAfter(err) != tc.wantRetry {
				t.Fatalf("error %v: kind %q, Retry-After %s; want %q, %s", err, ErrorKind(err), RetryAfter(err), tc.wantKind, tc.wantRetry)
			}
			clock = clock.Add(tc.advanceTo / 2)
			_, err = c.Heartbeat(ctx, wire.Heartbeat{HostID: "h1", Datacenter: "fra"})
			wantCalls := 2
			if tc.wantGated {
				wantCalls = 1
				ae, ok := errors.AsType[*APIError](err)
				if !ok || ae.Kind != tc.wantKind || ae.Status != tc.status || ae.RetryAfter != tc.wantRetry-tc.advanceTo/2 {
					t.Fatalf("gated call: %v (%+v), want kind %q, Retry-After %s", err, ae, tc.wantKind, tc.wantRetry-tc.advanceTo/2)
				}
			}
			if got := s.count(wire.PathHeartbeat); got != wantCalls {
				t.Fatalf("server got %d heartbeats, want %d", got, wantCalls)
			}
			// Other routes are not held back.
			if _, err := c.AcquireSlot(ctx, wire.SlotRequest{HostID: "h1", Datacenter: "fra"}); err != nil {
				t.Fatalf("slot acquire while heartbeats wait: %v", err)
			}
			if s.count(wire.PathSlotAcquire) != 1 {
				t.Fatal("slot acquire not sent")
			}
			// Once Retry-After passed the route is open again.
			clock = now.Add(tc.advanceTo)
			s.mu.Lock()
			s.status = http.StatusOK
			s.mu.Unlock()
			if _, err := c.Heartbeat(ctx, wire.Heartbeat{HostID: "h1", Datacenter: "fra"}); err != nil {
				t.Fatalf("after Retry-After: %v", err)
			}
			if got := s.count(wire.PathHeartbeat); got != wantCalls+1 {
				t.Fatalf("server got %d heartbeats after Retry-After, want %d", got, wantCalls+1)
			}
		})
	}
}

// TestFailoverOverloaded: an overloaded node's 429 is final (no other node
// is asked at once), and the next call starts at the next node.
func TestFailoverOverloaded(t *testing.T) {
	ctx := context.Background()
	a, ca := newShedder(t, http.StatusTooManyRequests, "5")
	b, cb := newShedder(t, http.StatusOK, "")
	f, err := NewFailover(ca, cb)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Heartbeat(ctx, wire.Heartbeat{HostID: "h1", Datacenter: "fra"})
	if ErrorKind(err) != wire.KindOverloaded || RetryAfter(err) != 5*time.Second {
		t.Fatalf("error %v, want overloaded with Retry-After 5s", err)
	}
	if a.count(wire.PathHeartbeat) != 1 || b.count(wire.PathHeartbeat) != 0 {
		t.Fatalf("heartbeats a=%d b=%d, want 1 and 0", a.count(wire.PathHeartbeat), b.count(wire.PathHeartbeat))
	}
	if _, err := f.Heartbeat(ctx, wire.Heartbeat{HostID: "h1", Datacenter: "fra"}); err != nil {
		t.Fatalf("next heartbeat: %v", err)
	}
	if a.count(wire.PathHeartbeat) != 1 || b.count(wire.PathHeartbeat) != 1 {
		t.Fatalf("heartbeats a=%d b=%d, want the second on b", a.count(wire.PathHeartbeat), b.count(wire.PathHeartbeat))
	}
}
