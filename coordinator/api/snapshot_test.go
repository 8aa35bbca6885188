package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/snapshotfile"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// saveSnapshot fetches a snapshot file from base.
func saveSnapshot(t *testing.T, c *http.Client, base string) (snapshotfile.Header, []byte) {
	t.Helper()
	r := doRequest(t, c, base, http.MethodGet, wire.PathSnapshot, tokAdmin, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", wire.PathSnapshot, r.status, r.body)
	}
	h, payload, err := snapshotfile.Read(bytes.NewReader(r.body), 0)
	if err != nil {
		t.Fatal(err)
	}
	return h, payload
}

// postSnapshot sends a restore of payload under header h, bounded in
// time: a restore that hangs fails the test instead.
func postSnapshot(t *testing.T, c *http.Client, base string, h snapshotfile.Header, payload []byte) response {
	t.Helper()
	file, err := snapshotfile.Encode(h, payload)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+wire.PathSnapshot, bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tokAdmin)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", wire.PathSnapshot, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

// editPayload sets top-level fields of a state machine snapshot.
func editPayload(t *testing.T, payload []byte, set map[string]string) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(payload, &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range set {
		m[k] = json.RawMessage(v)
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSnapshotRestoreHostileIndex: the Raft index a snapshot file claims
// (header or payload) is not trusted: a restore of one claiming the
// highest index completes promptly, the log's index stays the cluster's,
// and the cluster goes on taking writes.
func TestSnapshotRestoreHostileIndex(t *testing.T) {
	maxIdx := strconv.FormatUint(math.MaxUint64, 10)
	for _, tc := range []struct {
		name          string
		headerIndex   uint64
		payloadFields map[string]string
	}{
		{"header", math.MaxUint64, nil},
		{"payload", 1, map[string]string{"index": maxIdx}},
		{"both", math.MaxUint64, map[string]string{"index": maxIdx}},
		{"header-near-max", math.MaxUint64 - 1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.setDC("fra1", wire.DatacenterUpdate{SlotLimit: ptr(2)})
			e.heartbeat("h1", "fra1")
			h, payload := saveSnapshot(t, e.srv.Client(), e.srv.URL)
			h.Index = tc.headerIndex
			if tc.payloadFields != nil {
				payload = editPayload(t, payload, tc.payloadFields)
			}
			r := postSnapshot(t, e.srv.Client(), e.srv.URL, h, payload)
			if r.status != http.StatusOK {
				t.Fatalf("restore: %d %s", r.status, r.body)
			}
			last, err := strconv.ParseUint(e.store.Stats()["last_log_index"], 10, 64)
			if err != nil || last > 1<<20 {
				t.Fatalf("Raft last index %d (%v) after the restore: want the cluster's own", last, err)
			}
			if got := e.store.FSM().Index(); got > last {
				t.Fatalf("state machine claims index %d, beyond the log's %d", got, last)
			}
			e.setDC("fra1", wire.DatacenterUpdate{SlotLimit: ptr(3)})
			if dc, _ := e.dcState("fra1"); dc.Policy.SlotLimit != 3 {
				t.Fatalf("write after the restore: slot limit %d, want 3", dc.Policy.SlotLimit)
			}
		})
	}
}

// TestSnapshotRestoreFailsClosed: a restore keeps the slots held when it
// starts (also in a datacenter the snapshot lacks), fencing tokens never
// go backwards, and a snapshot whose time lies in the future is refused.
func TestSnapshotRestoreFailsClosed(t *testing.T) {
	e := newEnv(t)
	e.setDC("fra1", wire.DatacenterUpdate{SlotLimit: ptr(2)})
	for _, h := range []string{"h1", "h2", "h3"} {
		e.heartbeat(h, "fra1")
	}
	h, payload := saveSnapshot(t, e.srv.Client(), e.srv.URL)

	acquire := func(host, dc string) wire.Slot {
		t.Helper()
		return decodeOK[wire.Slot](t, e.do(http.MethodPost, wire.PathSlotAcquire, tokAgent, wire.SlotRequest{HostID: host, Datacenter: dc}))
	}
	h1 := acquire("h1", "fra1")
	h2 := acquire("h2", "fra1")
	mustOK(t, e.do(http.MethodPost, wire.PathSlotsRelease, tokOperate, wire.SlotReleaseRequest{HostID: "h2", Datacenter: "fra1"}))
	e.setDC("lhr1", wire.DatacenterUpdate{SlotLimit: ptr(1)})
	e.heartbeat("h5", "lhr1")
	h5 := acquire("h5", "lhr1")
	before, _ := e.dcState("fra1")

	now := time.Now().UTC()
	future := func(d time.Duration) string { return strconv.Quote(now.Add(d).Format(time.RFC3339Nano)) }
	for _, tc := range []struct {
		name string
		set  map[string]string
	}{
		{"now-ahead", map[string]string{"now": future(time.Hour)}},
		{"host-heard-ahead", map[string]string{"hosts": `{"h1":{"id":"h1","datacenter":"fra1","last_heartbeat":` + future(24*time.Hour) + `}}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := postSnapshot(t, e.srv.Client(), e.srv.URL, h, editPayload(t, payload, tc.set))
			if we := checkError(t, r, http.StatusBadRequest, wire.KindInvalidRequest); !strings.Contains(we.Value, "from the future") {
				t.Fatalf("refusal %q: want it to say the snapshot is from the future", we.Value)
			}
			if dc, _ := e.dcState("fra1"); dc.Slots["h1"] == nil || dc.NextToken != before.NextToken {
				t.Fatalf("a refused restore changed fra1: %+v", dc)
			}
		})
	}

	r := postSnapshot(t, e.srv.Client(), e.srv.URL, h, payload)
	out := decodeOK[wire.SnapshotRestored](t, r)
	if want := []string{"fra1/h1", "lhr1/h5"}; !slices.Equal(out.SlotsCarried, want) {
		t.Fatalf("slots carried %v, want %v", out.SlotsCarried, want)
	}
	fra1, _ := e.dcState("fra1")
	if s := fra1.Slots["h1"]; s == nil || s.Token != h1.Token || len(fra1.Slots) != 1 {
		t.Fatalf("fra1 slots after the restore %+v: want h1's (token %d) alone", fra1.Slots, h1.Token)
	}
	if fra1.NextToken < before.NextToken || fra1.Policy.SlotLimit != 2 {
		t.Fatalf("fra1 after the restore: next token %d (live was %d), slot limit %d (the snapshot's: 2)", fra1.NextToken, before.NextToken, fra1.Policy.SlotLimit)
	}
	lhr1, ok := e.dcState("lhr1")
	if !ok || lhr1.Slots["h5"] == nil || lhr1.Slots["h5"].Token != h5.Token {
		t.Fatalf("lhr1 after the restore (%v): %+v; want h5's slot kept", ok, lhr1)
	}
	e.store.FSM().View(func(st *fsm.State) {
		if hs := st.Hosts["h5"]; hs == nil || hs.Datacenter != "lhr1" {
			t.Errorf("host h5 after the restore: %+v; want it kept in lhr1", hs)
		}
	})
	// The next grant's fencing token is above every earlier one.
	if h3 := acquire("h3", "fra1"); h3.Token <= max(h1.Token, h2.Token) {
		t.Fatalf("grant after the restore: token %d, not above the earlier %d and %d", h3.Token, h1.Token, h2.Token)
	}
}

// lockedBuffer is a log sink safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSnapshotRestoreForwardLogsCaller: a restore sent to a follower is
// logged there with the caller's identity (the leader sees only the
// forwarding peer).
func TestSnapshotRestoreForwardLogsCaller(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.leader()
	follower := c.followers(leader)[0]
	var logs lockedBuffer
	api := New(Config{Store: follower.store, Auth: testAuth(t), PeerToken: tokPeer, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	h, payload := saveSnapshot(t, srv.Client(), srv.URL)
	mustOK(t, postSnapshot(t, srv.Client(), srv.URL, h, payload))
	if got := logs.String(); !strings.Contains(got, "snapshot restore forwarded to the leader") || !strings.Contains(got, "by=\"alice (admin") {
		t.Fatalf("follower's log:\n%s\nwant the restore logged with the caller (alice)", got)
	}
}
