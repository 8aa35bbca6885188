package client

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/snapshotfile"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// TestSnapshotFallbacks: snapshot saves and restores go to the next node
// (Options.Fallbacks) when one cannot be reached or answers 503, and stop
// at a node's final answer.
func TestSnapshotFallbacks(t *testing.T) {
	file, err := snapshotfile.Encode(snapshotfile.Header{FSMFormat: 3, Index: 7, Term: 2, Node: "c2", Created: time.Now().UTC()}, []byte(`{"v":3}`))
	if err != nil {
		t.Fatal(err)
	}
	var served atomic.Int32
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		if r.URL.Path != wire.PathSnapshot {
			http.NotFound(w, r)
			return
		}
		if r.Method == http.MethodGet {
			_, _ = w.Write(file)
			return
		}
		body, _ := io.ReadAll(r.Body)
		_ = json.NewEncoder(w).Encode(wire.SnapshotRestored{Index: 7, Term: 2, Hosts: len(body)})
	}))
	t.Cleanup(good.Close)
	answer := func(status int, kind string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(wire.Error{Kind: kind, Value: "from the first node"})
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	ln.Close()

	for _, tc := range []struct {
		name     string
		first    string
		wantNext bool
	}{
		{"refused", refused, true},
		{"no-leader", answer(http.StatusServiceUnavailable, wire.KindNoLeader), true},
		{"bad-request-is-final", answer(http.StatusBadRequest, wire.KindInvalidRequest), false},
		{"forbidden-is-final", answer(http.StatusForbidden, wire.KindForbidden), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			for _, op := range []string{"save", "restore"} {
				c, err := New(tc.first, Options{Token: "t", Fallbacks: []string{good.URL}})
				if err != nil {
					t.Fatal(err)
				}
				before := served.Load()
				if op == "save" {
					_, h, err := c.SnapshotSave(ctx)
					if tc.wantNext && (err != nil || h.Index != 7) {
						t.Fatalf("save: %+v %v; want the next node's file", h, err)
					}
					if !tc.wantNext && err == nil {
						t.Fatal("save: no error; want the first node's answer")
					}
				} else {
					out, err := c.SnapshotRestore(ctx, file)
					if tc.wantNext && (err != nil || out.Hosts != len(file)) {
						t.Fatalf("restore: %+v %v; want the next node's answer to the whole file", out, err)
					}
					if !tc.wantNext && err == nil {
						t.Fatal("restore: no error; want the first node's answer")
					}
				}
				if got := served.Load() - before; (got == 1) != tc.wantNext {
					t.Fatalf("%s: the next node served %d requests; want it tried: %v", op, got, tc.wantNext)
				}
			}
		})
	}
}
