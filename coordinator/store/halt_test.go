package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/internal/testcoord"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// stateOf renders a node's replicated state.
func stateOf(t *testing.T, c *testcoord.Coordinator) string {
	t.Helper()
	var (
		out []byte
		err error
	)
	c.Store.FSM().View(func(s *fsm.State) { out, err = json.Marshal(s) })
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// TestHaltOnUnknownCommand: every node of a real three-node quorum (Raft
// on disk, HTTP API) that meets a log entry of a command type or format
// version it does not know, or an undecodable payload, halts: it applies
// nothing more (no later command changes its state, no snapshot is
// taken), /readyz answers 503 with the reason, kroll_coordinator_fsm_halted
// is 1, and writes are refused over HTTP, to operators and agents.
func TestHaltOnUnknownCommand(t *testing.T) {
	for _, tc := range []struct {
		name, entry, reason string
	}{
		{"unknown type", `{"type":"drain_region","v":2,"time":"2030-01-01T00:00:00Z","payload":{"region":"eu"}}`, "unknown command type"},
		{"unknown version", fmt.Sprintf(`{"type":"tick","v":%d,"time":"2030-01-01T00:00:00Z","payload":{}}`, fsm.FormatVersion+1), fmt.Sprintf("unknown format version %d", fsm.FormatVersion+1)},
		{"undecodable payload", `{"type":"acquire","v":2,"time":"2030-01-01T00:00:00Z","payload":{"datacenter":7}}`, "undecodable payload"},
		{"unknown payload field", `{"type":"set_datacenter","v":2,"time":"2030-01-01T00:00:00Z","payload":{"name":"ams","quota":3}}`, "undecodable payload"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodes := testcoord.StartCluster(t, 3, testcoord.Options{})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var leader *testcoord.Coordinator
			for _, c := range nodes {
				if c.Store.IsLeader() {
					leader = c
				}
			}
			if _, err := leader.Client.SetDatacenter(ctx, "fra", wire.DatacenterUpdate{SlotLimit: ptr(1)}); err != nil {
				t.Fatal(err)
			}
			if _, err := leader.Store.Apply(ctx, fsm.TypeHeartbeat, fsm.Heartbeat{Heartbeat: wire.Heartbeat{HostID: "h1", Datacenter: "fra"}}); err != nil {
				t.Fatal(err)
			}
			if err := leader.Store.ProposeRaw([]byte(tc.entry)); err != nil {
				t.Fatal(err)
			}
			// Every node halts when it meets the entry.
			frozen := map[string]string{}
			for _, c := range nodes {
				deadline := time.Now().Add(10 * time.Second)
				for c.Store.Halted() == nil {
					if time.Now().After(deadline) {
						t.Fatalf("%s did not halt", c.ID)
					}
					time.Sleep(10 * time.Millisecond)
				}
				err := c.Store.Halted()
				if !errors.Is(err, fsm.ErrHalted) || !strings.Contains(err.Error(), tc.reason) {
					t.Fatalf("%s halted with %v, want %q", c.ID, err, tc.reason)
				}
				frozen[c.ID] = stateOf(t, c)
				if !strings.Contains(frozen[c.ID], `"h1"`) {
					t.Fatalf("%s lost the commands before the halt", c.ID)
				}
			}
			// Raft goes on committing entries; none changes a halted
			// node's state.
			later := []byte(`{"type":"remove_host","v":2,"time":"2030-01-01T00:00:00Z","payload":{"host":"h1","force":true,"reason":"x"}}`)
			deadline := time.Now().Add(10 * time.Second)
			for committed := false; !committed; {
				for _, c := range nodes {
					if c.Store.IsLeader() && c.Store.ProposeRaw(later) == nil {
						committed = true
						break
					}
				}
				if !committed && time.Now().After(deadline) {
					t.Fatal("no later entry committed")
				}
				time.Sleep(10 * time.Millisecond)
			}
			for _, c := range nodes {
				if _, err := c.Store.Apply(ctx, fsm.TypeRemoveHost, fsm.RemoveHost{Host: "h1"}); !errors.Is(err, fsm.ErrHalted) {
					t.Fatalf("%s: apply on a halted node: %v, want ErrHalted", c.ID, err)
				}
				if err := c.Store.Snapshot(); err == nil {
					t.Fatalf("%s took a snapshot while halted", c.ID)
				}
				code, body := get(t, c.URL+"/readyz")
				if code != http.StatusServiceUnavailable || !strings.Contains(body, "halted") || !strings.Contains(body, tc.reason) {
					t.Fatalf("%s /readyz: %d %s", c.ID, code, body)
				}
				code, body = get(t, c.URL+"/metrics")
				if code != http.StatusOK || !strings.Contains(body, "kroll_coordinator_fsm_halted 1") {
					t.Fatalf("%s /metrics: %d, no kroll_coordinator_fsm_halted 1", c.ID, code)
				}
				_, err := c.Client.SetDatacenter(ctx, "ams", wire.DatacenterUpdate{SlotLimit: ptr(1)})
				var apiErr *client.APIError
				if !errors.As(err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable || !strings.Contains(apiErr.Value, "halted") {
					t.Fatalf("%s: dc set while halted: %v", c.ID, err)
				}
				agent, err := client.New(c.URL, client.Options{Token: testcoord.AgentToken})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := agent.AcquireSlot(ctx, wire.SlotRequest{Datacenter: "fra", HostID: "h1"}); !errors.As(err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable {
					t.Fatalf("%s: slot acquire while halted: %v", c.ID, err)
				}
			}
			time.Sleep(1500 * time.Millisecond) // at least one leader tick interval
			for _, c := range nodes {
				if got := stateOf(t, c); got != frozen[c.ID] {
					t.Fatalf("%s: a halted node's state changed:\n%s\nwas\n%s", c.ID, got, frozen[c.ID])
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
