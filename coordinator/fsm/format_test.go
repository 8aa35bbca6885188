package fsm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
)

// canonical renders the state as the fixtures do (indented JSON; map keys
// sorted).
func canonical(t testing.TB, f *FSM) string {
	t.Helper()
	var (
		out []byte
		err error
	)
	f.View(func(s *State) { out, err = json.MarshalIndent(s, "", "  ") })
	if err != nil {
		t.Fatal(err)
	}
	return string(out) + "\n"
}

// expectedState reads a fixture's canonical state and renders it with
// today's State type, so that fields added since (at their zero value)
// do not count as differences.
func expectedState(t testing.TB, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f := New()
	if err := f.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return canonical(t, f)
}

func readLines(t testing.TB, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		out = append(out, bytes.Clone(sc.Bytes()))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func restoreFile(t testing.TB, path string) *FSM {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f := New()
	if err := f.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatalf("restore %s: %v", path, err)
	}
	return f
}

// replay applies log entries from (1-based Raft index) first on, checking
// each result against want.
func replay(t *testing.T, f *FSM, log, want [][]byte, first int) {
	t.Helper()
	for i := first; i <= len(log); i++ {
		res := f.Apply(&raft.Log{Index: uint64(i), Type: raft.LogCommand, Data: log[i-1]})
		got, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want[i-1]) {
			t.Fatalf("entry %d (%s): result\n%s\nwant\n%s", i, log[i-1], got, want[i-1])
		}
	}
	if err := f.Halted(); err != nil {
		t.Fatalf("halted: %v", err)
	}
}

// TestFormatReplay: a Raft log and snapshots written by an earlier format
// (committed fixtures, see testdata/gen) are replayed and restored by
// today's code into identical results and states, and today's snapshot
// of that state restores into it again.
func TestFormatReplay(t *testing.T) {
	for _, tc := range []struct {
		dir string
		v   int // the commands' "v" (0: absent)
		mid int // the entry after which snapshot-mid was taken
		// more lists the command types of the format's log beyond
		// format 1's.
		more []Type
	}{
		{"format-v1", 0, 30, nil},
		{"format-v2", FormatV2, 30, nil},
		{"format-v3", FormatV3, 30, []Type{TypeMarkSilent}},
		{"format-v4", FormatV4, 30, []Type{TypeMarkSilent}},
		{"format-v5", FormatV5, 30, []Type{TypeMarkSilent, TypeSetTrain, TypeHoldTrain, TypeResumeTrain, TypeSkipTrain,
			TypeExpediteTrain, TypeTrainStep, TypeRejectRelease}},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			dir := filepath.Join("testdata", tc.dir)
			log := readLines(t, filepath.Join(dir, "log.jsonl"))
			results := readLines(t, filepath.Join(dir, "results.jsonl"))
			if len(log) != len(results) || len(log) <= tc.mid {
				t.Fatalf("%d entries, %d results, mid %d", len(log), len(results), tc.mid)
			}
			wantMid := expectedState(t, filepath.Join(dir, "state-mid.json"))
			wantEnd := expectedState(t, filepath.Join(dir, "state.json"))
			types := map[Type]bool{}
			for _, e := range log {
				var c Command
				if err := json.Unmarshal(e, &c); err != nil {
					t.Fatal(err)
				}
				types[c.Type] = true
				if c.V != tc.v {
					t.Fatalf("a command of version %d in %s: %s", c.V, tc.dir, e)
				}
			}
			for _, typ := range append([]Type{TypeSetDatacenter, TypePause, TypeResume, TypeHeartbeat, TypeAcquire, TypeRenew, TypeRelease,
				TypeForceRelease, TypeHealth, TypeTick, TypeSetMember, TypeRemoveMember, TypeAddRelease, TypePushPolicy,
				TypeRetirePolicy, TypeStartRollout, TypePauseRollout, TypeResumeRollout, TypeAbortRollout, TypeRemoveHost}, tc.more...) {
				if !types[typ] {
					t.Errorf("the fixture's log has no %s command", typ)
				}
			}

			t.Run("log", func(t *testing.T) {
				f := New()
				replay(t, f, log[:tc.mid], results, 1)
				if got := canonical(t, f); got != wantMid {
					t.Fatalf("state after entry %d:\n%s\nwant\n%s", tc.mid, got, wantMid)
				}
				replay(t, f, log, results, tc.mid+1)
				if got := canonical(t, f); got != wantEnd {
					t.Fatalf("state:\n%s\nwant\n%s", got, wantEnd)
				}
			})
			t.Run("snapshot-mid+log", func(t *testing.T) {
				f := restoreFile(t, filepath.Join(dir, "snapshot-mid.json"))
				if got := canonical(t, f); got != wantMid {
					t.Fatalf("restored state:\n%s\nwant\n%s", got, wantMid)
				}
				replay(t, f, log, results, tc.mid+1)
				if got := canonical(t, f); got != wantEnd {
					t.Fatalf("state:\n%s\nwant\n%s", got, wantEnd)
				}
			})
			t.Run("snapshot", func(t *testing.T) {
				f := restoreFile(t, filepath.Join(dir, "snapshot.json"))
				if got := canonical(t, f); got != wantEnd {
					t.Fatalf("restored state:\n%s\nwant\n%s", got, wantEnd)
				}
				// Today's snapshot of it carries today's version and
				// restores into the same state.
				var sink memSink
				snap, err := f.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				if err := snap.Persist(&sink); err != nil {
					t.Fatal(err)
				}
				var hdr struct {
					V int `json:"v"`
				}
				if err := json.Unmarshal(sink.Bytes(), &hdr); err != nil || hdr.V != FormatVersion {
					t.Fatalf("snapshot version %d (%v), want %d", hdr.V, err, FormatVersion)
				}
				g := New()
				if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
					t.Fatal(err)
				}
				if got := canonical(t, g); got != wantEnd {
					t.Fatalf("state restored from today's snapshot:\n%s\nwant\n%s", got, wantEnd)
				}
			})
		})
	}
}
