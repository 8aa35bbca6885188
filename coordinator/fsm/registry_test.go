package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// haltFixture is an FSM with a datacenter and a host, at Raft index 2.
func haltFixture(t *testing.T) *FSM {
	t.Helper()
	f := New()
	for i, c := range []struct {
		typ Type
		p   any
	}{
		{TypeSetDatacenter, SetDatacenter{Name: "fra", Update: wire.DatacenterUpdate{SlotLimit: ptr(1)}}},
		{TypeHeartbeat, Heartbeat{Heartbeat: wire.Heartbeat{HostID: "h1", Datacenter: "fra"}}},
	} {
		data, err := NewCommand(c.typ, t0, c.p)
		if err != nil {
			t.Fatal(err)
		}
		if r := f.Apply(&raft.Log{Index: uint64(i + 1), Data: data}).(Result); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	return f
}

// TestHalt: a command this code cannot apply exactly as written halts
// the FSM — nothing changes, then or after — while well-formed commands,
// version 1's lenient payloads and refusals of valid commands do not.
func TestHalt(t *testing.T) {
	for _, tc := range []struct {
		name, entry string
		halts       string // "" = applies
	}{
		{"unknown type", `{"type":"launch","v":3,"time":"2026-11-26T03:00:00Z","payload":{"host":"h1"}}`, "unknown command type"},
		{"unknown type v1", `{"type":"launch","time":"2026-11-26T03:00:00Z","payload":{"host":"h1"}}`, "unknown command type"},
		{"mark_silent in v2 (new in v3)", `{"type":"mark_silent","v":2,"time":"2026-11-26T03:00:00Z","payload":{"hosts":["h1"]}}`, "unknown command type in format version 2"},
		{"mark_silent in v1 (new in v3)", `{"type":"mark_silent","time":"2026-11-26T03:00:00Z","payload":{"hosts":["h1"]}}`, "unknown command type in format version 1"},
		{"valid mark_silent v3", `{"type":"mark_silent","v":3,"time":"2026-11-26T03:00:00Z","payload":{"hosts":["h1"],"lease":0,"reboot_deadline":0,"alive_within":0}}`, ""},
		{"future version", `{"type":"remove_host","v":6,"time":"2026-11-26T03:00:00Z","payload":{"host":"h1"}}`, "unknown format version 6"},
		{"negative version", `{"type":"remove_host","v":-1,"time":"2026-11-26T03:00:00Z","payload":{"host":"h1"}}`, "unknown format version -1"},
		{"version not a number", `{"type":"remove_host","v":"2","time":"2026-11-26T03:00:00Z","payload":{"host":"h1"}}`, "undecodable command"},
		{"not JSON", `remove h1`, "undecodable command"},
		{"payload of the wrong shape", `{"type":"remove_host","v":2,"time":"2026-11-26T03:00:00Z","payload":{"host":1}}`, "undecodable payload"},
		{"payload of the wrong shape v1", `{"type":"remove_host","time":"2026-11-26T03:00:00Z","payload":{"host":1}}`, "undecodable payload"},
		{"unknown payload field v2", `{"type":"remove_host","v":2,"time":"2026-11-26T03:00:00Z","payload":{"host":"h1","forever":true}}`, "undecodable payload"},
		{"null payload v2", `{"type":"remove_host","v":2,"time":"2026-11-26T03:00:00Z","payload":null}`, "null payload"},
		{"missing payload", `{"type":"remove_host","v":2,"time":"2026-11-26T03:00:00Z"}`, "missing payload"},
		{"white space around the payload v2", `{"type":"remove_host","v":2,"time":"2026-11-26T03:00:00Z","payload":{"host":"h1"} }`, ""},
		{"valid v2", `{"type":"remove_host","v":2,"time":"2026-11-26T03:00:00Z","payload":{"host":"h1"}}`, ""},
		{"valid v1 with an unknown field", `{"type":"remove_host","time":"2026-11-26T03:00:00Z","payload":{"host":"h1","forever":true}}`, ""},
		{"refused, not halted", `{"type":"remove_host","v":2,"time":"2026-11-26T03:00:00Z","payload":{"host":"nope"}}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := haltFixture(t)
			before := canonical(t, f)
			res := f.Apply(&raft.Log{Index: 3, Data: []byte(tc.entry)}).(Result)
			if tc.halts == "" {
				if res.Halted || f.Halted() != nil {
					t.Fatalf("halted: %v", f.Halted())
				}
				if f.Index() != 3 {
					t.Fatalf("index %d, want 3", f.Index())
				}
				return
			}
			var h *HaltError
			if !res.Halted || res.Err == nil || res.Err.Kind != wire.KindInternal || !errors.As(f.Halted(), &h) || !errors.Is(f.Halted(), ErrHalted) {
				t.Fatalf("result %+v, halted %v", res, f.Halted())
			}
			if h.Index != 3 || !strings.Contains(h.Error(), tc.halts) || !strings.Contains(res.Err.Value, tc.halts) {
				t.Fatalf("halt %+v (%v), want index 3 and %q", h, h, tc.halts)
			}
			if got := canonical(t, f); got != before {
				t.Fatalf("the halting command changed the state:\n%s\nwas\n%s", got, before)
			}
			// Nothing applies from now on, by either path.
			data, err := NewCommand(TypeRemoveHost, t0.Add(time.Hour), RemoveHost{Host: "h1"})
			if err != nil {
				t.Fatal(err)
			}
			if r := f.Apply(&raft.Log{Index: 4, Data: data}).(Result); !r.Halted {
				t.Fatalf("applied after the halt: %+v", r)
			}
			if r := f.Exec(t0.Add(time.Hour), RemoveHost{Host: "h1"}); !r.Halted {
				t.Fatalf("executed after the halt: %+v", r)
			}
			if got := canonical(t, f); got != before || f.Index() != 2 {
				t.Fatalf("a halted FSM changed (index %d):\n%s\nwas\n%s", f.Index(), got, before)
			}
			if _, err := f.Snapshot(); !errors.Is(err, ErrHalted) {
				t.Fatalf("snapshot while halted: %v", err)
			}
			if err := f.Restore(io.NopCloser(strings.NewReader(`{"v":2}`))); !errors.Is(err, ErrHalted) {
				t.Fatalf("restore while halted: %v", err)
			}
		})
	}
}

// TestRestoreVersion: snapshots of version 1 (no version) and of today's
// restore; one of an unknown version halts and restores nothing.
func TestRestoreVersion(t *testing.T) {
	for _, tc := range []struct {
		name, snap string
		halts      bool
	}{
		{"v1", `{"hosts":{"h1":{"id":"h1","datacenter":"fra"}},"index":7}`, false},
		{"v2", `{"v":2,"hosts":{"h1":{"id":"h1","datacenter":"fra"}},"index":7}`, false},
		{"v3", `{"v":3,"hosts":{"h1":{"id":"h1","datacenter":"fra"}},"index":7}`, false},
		{"v4", `{"v":4,"hosts":{"h1":{"id":"h1","datacenter":"fra"}},"index":7}`, false},
		{"v5", `{"v":5,"hosts":{"h1":{"id":"h1","datacenter":"fra"}},"index":7}`, false},
		{"v6", `{"v":6,"hosts":{"h1":{"id":"h1","datacenter":"fra"}},"index":7}`, true},
		{"negative", `{"v":-2,"hosts":{"h1":{"id":"h1","datacenter":"fra"}},"index":7}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := New()
			before := canonical(t, f)
			err := f.Restore(io.NopCloser(strings.NewReader(tc.snap)))
			if !tc.halts {
				if err != nil || f.Halted() != nil || f.Index() != 7 || len(f.state.HostsIn("fra")) != 1 {
					t.Fatalf("restore: %v, halted %v, index %d", err, f.Halted(), f.Index())
				}
				return
			}
			if !errors.Is(err, ErrHalted) || !errors.Is(f.Halted(), ErrHalted) || !strings.Contains(err.Error(), "snapshot in unknown format version") {
				t.Fatalf("restore: %v, halted %v", err, f.Halted())
			}
			if got := canonical(t, f); got != before {
				t.Fatalf("a refused snapshot changed the state:\n%s", got)
			}
		})
	}
}

// TestNewCommand: only commands this code can apply are encoded, in
// today's format version — a command refused here never reaches the log
// (where it would halt every node).
func TestNewCommand(t *testing.T) {
	for _, tc := range []struct {
		name    string
		typ     Type
		payload any
		err     string // "" = encodes
	}{
		{"typed", TypeRelease, SlotRelease{Datacenter: "fra", Host: "h1", Token: 1, Reason: "done"}, ""},
		{"raw (forwarded)", TypeRelease, json.RawMessage(`{"datacenter":"fra","host":"h1","token":1}`), ""},
		{"unknown type", Type("launch"), RemoveHost{Host: "h1"}, "unknown command type"},
		{"payload of another command", TypeRelease, Renew{Datacenter: "fra", Host: "h1", Token: 1}, "takes a fsm.SlotRelease payload"},
		{"pointer payload", TypeRemoveHost, &RemoveHost{Host: "h1"}, "takes a fsm.RemoveHost payload"},
		{"nil payload", TypeTick, nil, "takes a fsm.Tick payload"},
		{"raw with an unknown field", TypeRelease, json.RawMessage(`{"datacenter":"fra","host":"h1","lease":60}`), "invalid release payload"},
		{"raw of the wrong shape", TypeRelease, json.RawMessage(`{"token":"one"}`), "invalid release payload"},
		{"raw null", TypeTick, json.RawMessage(`null`), "invalid tick payload"},
		{"raw not JSON", TypeTick, json.RawMessage(`{`), "invalid tick payload"},
		{"raw with data after it", TypeRemoveHost, json.RawMessage(`{"host":"h1"} {"host":"h2"}`), "data after the payload"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := NewCommand(tc.typ, t0, tc.payload)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var c Command
			if err := json.Unmarshal(data, &c); err != nil || c.V != FormatVersion || c.Type != tc.typ {
				t.Fatalf("%s: %v", data, err)
			}
			f := New()
			if r := f.ApplyCommand(data); r.Halted {
				t.Fatalf("halted: %v", f.Halted())
			}
		})
	}
}

// TestRegistry: every registered command has its own payload type, which
// encodes and decodes in today's format; Exec and the log dispatch through
// the same entry.
func TestRegistry(t *testing.T) {
	types := Types()
	if len(types) < 20 {
		t.Fatalf("%d command types registered", len(types))
	}
	payloads := map[string]Type{}
	for _, typ := range types {
		p := PayloadOf(typ)
		name := fmt.Sprintf("%T", p)
		if o, dup := payloads[name]; dup {
			t.Fatalf("%s and %s share payload %s", typ, o, name)
		}
		payloads[name] = typ
		data, err := NewCommand(typ, t0, p)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		a, b := New(), New()
		ra := a.ApplyCommand(data)
		rb := b.Exec(t0, p)
		if ra.Halted || rb.Halted {
			t.Fatalf("%s: halted: %v %v", typ, a.Halted(), b.Halted())
		}
		ja, _ := json.Marshal(ra)
		jb, _ := json.Marshal(rb)
		if !bytes.Equal(ja, jb) || canonical(t, a) != canonical(t, b) {
			t.Fatalf("%s: the log and Exec differ: %s / %s", typ, ja, jb)
		}
	}
	if PayloadOf("launch") != nil {
		t.Fatal("PayloadOf an unknown type")
	}
}

// TestExecHalts: the simulator's path halts on a payload no command takes,
// as the log's does on an unknown type.
func TestExecHalts(t *testing.T) {
	for _, tc := range []struct {
		name string
		exec func(f *FSM) Result
	}{
		{"unregistered payload", func(f *FSM) Result { return f.Exec(t0, RolloutAction{ID: "ro"}) }},
		{"pointer payload", func(f *FSM) Result { return f.Exec(t0, &RemoveHost{Host: "h1"}) }},
		{"type and payload disagree", func(f *FSM) Result { return f.ExecType(TypeRelease, t0, Renew{Datacenter: "fra", Host: "h1"}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := haltFixture(t)
			before := canonical(t, f)
			if r := tc.exec(f); !r.Halted || !errors.Is(f.Halted(), ErrHalted) {
				t.Fatalf("result %+v, halted %v", r, f.Halted())
			}
			if r := f.Exec(t0, RemoveHost{Host: "h1"}); !r.Halted {
				t.Fatalf("executed after the halt: %+v", r)
			}
			if got := canonical(t, f); got != before {
				t.Fatalf("state changed:\n%s", got)
			}
		})
	}
}

// TestExecReplaysFixture: the current format's fixture commands, decoded
// through the registry and run through Exec (the simulator's path, which
// runs by the current format's rules), give the results and the state of
// the Raft path.
func TestExecReplaysFixture(t *testing.T) {
	dir := fmt.Sprintf("testdata/format-v%d/", FormatVersion)
	log := readLines(t, dir+"log.jsonl")
	results := readLines(t, dir+"results.jsonl")
	f := New()
	for i, data := range log {
		var c Command
		if err := json.Unmarshal(data, &c); err != nil {
			t.Fatal(err)
		}
		e := registry.byType[c.Type]
		if c.V != FormatVersion {
			t.Fatalf("entry %d: format %d", i+1, c.V)
		}
		p, err := e.decode(c.Payload, c.V)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := json.Marshal(f.Exec(c.Time, p))
		if !bytes.Equal(got, results[i]) {
			t.Fatalf("entry %d: %s, want %s", i+1, got, results[i])
		}
	}
	f.state.Index = uint64(len(log)) // Exec has no Raft index
	if got, want := canonical(t, f), expectedState(t, dir+"state.json"); got != want {
		t.Fatalf("state:\n%s\nwant\n%s", got, want)
	}
}
