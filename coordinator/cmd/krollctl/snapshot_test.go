package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/internal/testcoord"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/snapshotfile"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// fleetJSON is the part of the state a restore must bring back:
// datacenters (with their slots) and hosts.
func fleetJSON(t *testing.T, dcs map[string]*fsm.Datacenter, hosts map[string]*fsm.Host) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"datacenters": dcs, "hosts": hosts})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func nodeFleet(t *testing.T, c *testcoord.Coordinator) string {
	t.Helper()
	var out string
	c.Store.FSM().View(func(st *fsm.State) { out = fleetJSON(t, st.Datacenters, st.Hosts) })
	return out
}

// fileFleet is the fleet state a snapshot file holds.
func fileFleet(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, payload, err := snapshotfile.Read(bytes.NewReader(data), 0)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Datacenters map[string]*fsm.Datacenter `json:"datacenters"`
		Hosts       map[string]*fsm.Host       `json:"hosts"`
	}
	if err := json.Unmarshal(payload, &st); err != nil {
		t.Fatal(err)
	}
	return fleetJSON(t, st.Datacenters, st.Hosts)
}

// waitFleet waits (bounded) until every node holds want.
func waitFleet(t *testing.T, nodes []*testcoord.Coordinator, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for _, n := range nodes {
		for got := nodeFleet(t, n); got != want; got = nodeFleet(t, n) {
			if time.Now().After(deadline) {
				t.Fatalf("%s holds\n %s\nwant\n %s", n.ID, got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestSnapshotSaveRestore: a snapshot saved through a follower (which
// fetches the leader's), the state changed, then the snapshot restored
// through a follower: every node of the 3-node quorum holds the saved
// state again. Damaged files are refused, by krollctl before sending and
// by the coordinator when sent anyway, and change nothing.
func TestSnapshotSaveRestore(t *testing.T) {
	nodes := testcoord.StartCluster(t, 3, testcoord.Options{})
	var leader, follower *testcoord.Coordinator
	for _, n := range nodes {
		if n.Store.IsLeader() {
			leader = n
		} else {
			follower = n
		}
	}
	ctx := context.Background()
	agent, err := client.New(leader.URL, client.Options{Token: testcoord.AgentToken})
	if err != nil {
		t.Fatal(err)
	}
	setDC := func(name string, slots int) {
		t.Helper()
		if _, err := leader.Client.SetDatacenter(ctx, name, wire.DatacenterUpdate{SlotLimit: &slots}); err != nil {
			t.Fatal(err)
		}
	}
	heartbeat := func(host, dc string) {
		t.Helper()
		if _, err := agent.Heartbeat(ctx, wire.Heartbeat{HostID: host, Datacenter: dc, Kernel: "6.1.0-47-amd64", Phase: "idle"}); err != nil {
			t.Fatal(err)
		}
	}
	setDC("fra1", 2)
	setDC("ams1", 1)
	for _, h := range []string{"h1", "h2", "h3"} {
		heartbeat(h, "fra1")
	}
	heartbeat("h4", "ams1")
	if _, err := agent.AcquireSlot(ctx, wire.SlotRequest{HostID: "h1", Datacenter: "fra1"}); err != nil {
		t.Fatal(err)
	}

	// Every node has announced its HTTP address (followers do so
	// asynchronously, retrying until they reach the leader).
	announced := func() bool {
		ms, err := leader.Client.Members(ctx)
		for _, m := range ms {
			if m.HTTPAddr == "" {
				return false
			}
		}
		return err == nil && len(ms) == 3
	}
	for deadline := time.Now().Add(15 * time.Second); !announced(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the nodes did not announce their HTTP addresses within 15 s")
		}
	}

	path := filepath.Join(t.TempDir(), "kroll.snap")
	h, err := snapshotSave(ctx, follower.Client, path)
	if err != nil {
		t.Fatal(err)
	}
	if h.Node != leader.ID || h.FSMFormat != fsm.FormatVersion || h.Index == 0 {
		t.Fatalf("header %+v: want node %s (the leader), format %d, an index", h, leader.ID, fsm.FormatVersion)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("saved file: %v, %v; want mode 0600", fi, err)
	}
	saved := fileFleet(t, path)
	waitFleet(t, nodes, saved)

	// Change the state: a new datacenter, another limit, a new host, a
	// released and a new slot.
	setDC("lhr1", 3)
	setDC("fra1", 1)
	heartbeat("h5", "lhr1")
	if _, err := agent.AcquireSlot(ctx, wire.SlotRequest{HostID: "h5", Datacenter: "lhr1"}); err != nil {
		t.Fatal(err)
	}
	changed := nodeFleet(t, leader)
	if changed == saved {
		t.Fatal("the state did not change")
	}
	waitFleet(t, nodes, changed)

	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	hdrEnd := bytes.IndexByte(good, '\n') + 1
	flip := bytes.Clone(good)
	flip[len(flip)-2] ^= 0x20
	encode := func(h snapshotfile.Header, payload string) []byte {
		b, err := snapshotfile.Encode(h, []byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	_, payload, _ := snapshotfile.Read(bytes.NewReader(good), 0)
	hdr := h
	future := h
	future.FSMFormat = fsm.FormatVersion + 1
	for _, tc := range []struct {
		name, want string
		file       []byte
		local      bool // krollctl refuses it before sending
	}{
		{"truncated", "truncated", good[:len(good)-10], true},
		{"header-only", "truncated", good[:hdrEnd], true},
		{"checksum", "checksum mismatch", flip, true},
		{"empty", "truncated header", nil, true},
		{"trailing-data", "data after the", append(bytes.Clone(good), 'x'), true},
		{"not-a-snapshot", "magic", []byte(`{"magic":"etcd","version":1,"fsm_format":3,"index":1,"term":1,"node":"x","created":"2026-01-01T00:00:00Z","size":1,"sha256":"` + strings.Repeat("0", 64) + "\"}\nx"), true},
		{"file-format", "file format version 2", bytes.Replace(good, []byte(`"version":1`), []byte(`"version":2`), 1), true},
		{"fsm-format", "upgrade the coordinators first", encode(future, string(payload)), false},
		{"undecodable-payload", "does not decode", encode(hdr, `{"v":3,"datacenters":`), false},
		{"unknown-field", "unknown field", encode(hdr, strings.Replace(string(payload), `"datacenters":`, `"datacentres":{},"datacenters":`, 1)), false},
		{"unknown-state-version", "format version 9", encode(hdr, strings.Replace(string(payload), fmt.Sprintf(`"v":%d`, fsm.FormatVersion), `"v":9`, 1)), false},
		{"two-documents", "data after the state", encode(hdr, string(payload)+" {}"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := filepath.Join(t.TempDir(), "bad.snap")
			if err := os.WriteFile(bad, tc.file, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := snapshotRestore(ctx, follower.Client, bad)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("krollctl restore: %v; want an error ∋ %q", err, tc.want)
			}
			if _, ok := err.(*client.APIError); ok == tc.local {
				t.Fatalf("krollctl restore: %T %v; refused locally: want %v", err, err, tc.local)
			}
			// The coordinator refuses it too (any node), with a 400.
			for _, n := range []*testcoord.Coordinator{follower, leader} {
				_, err := n.Client.SnapshotRestore(ctx, tc.file)
				ae, ok := err.(*client.APIError)
				if !ok || ae.Status != http.StatusBadRequest || ae.Kind != wire.KindInvalidRequest || !strings.Contains(ae.Value, tc.want) {
					t.Fatalf("POST %s to %s: %v; want 400 invalid_request ∋ %q", wire.PathSnapshot, n.ID, err, tc.want)
				}
			}
			for _, n := range nodes {
				if got := nodeFleet(t, n); got != changed {
					t.Fatalf("%s changed by a refused restore:\n %s\nwant\n %s", n.ID, got, changed)
				}
			}
		})
	}

	// Agents may neither save nor restore.
	if _, _, err := agent.SnapshotSave(ctx); client.ErrorKind(err) != wire.KindForbidden {
		t.Fatalf("agent saves: %v; want forbidden", err)
	}
	if _, err := agent.SnapshotRestore(ctx, good); client.ErrorKind(err) != wire.KindForbidden {
		t.Fatalf("agent restores: %v; want forbidden", err)
	}

	// A slot held at the restore stays held (TestSnapshotRestoreFailsClosed):
	// h5 gives its back so that the saved state comes back as it was.
	if _, err := leader.Client.ReleaseSlot(ctx, wire.SlotReleaseRequest{HostID: "h5", Datacenter: "lhr1"}); err != nil {
		t.Fatal(err)
	}
	out, err := snapshotRestore(ctx, follower.Client, path)
	if err != nil {
		t.Fatal(err)
	}
	if out.Index != h.Index || out.Datacenters != 2 || out.Hosts != 4 || len(out.SlotsCarried) != 0 {
		t.Fatalf("restore answered %+v; want index %d, 2 datacenters, 4 hosts", out, h.Index)
	}
	waitFleet(t, nodes, saved)
	// The cluster goes on: members known, writes through a follower.
	if _, err := follower.Client.SetDatacenter(ctx, "fra1", wire.DatacenterUpdate{SlotLimit: new(3)}); err != nil {
		t.Fatalf("write after restore: %v", err)
	}
	ms, err := follower.Client.Members(ctx)
	if err != nil || len(ms) != 3 {
		t.Fatalf("members after restore: %+v %v", ms, err)
	}
	for _, m := range ms {
		if m.HTTPAddr == "" {
			t.Fatalf("member %s lost its HTTP address in the restore: %+v", m.ID, ms)
		}
	}
}
