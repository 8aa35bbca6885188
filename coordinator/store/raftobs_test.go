package store

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// syncBuffer is a bytes.Buffer safe for the node's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// records decodes the JSON lines written so far.
func (b *syncBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b.b.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// TestHCLogAdapter: hclog calls become slog records with the level
// mapped, the logger's name as component, key/value pairs as attributes
// and hclog's formatting types rendered; levels below the adapter's or
// the handler's are dropped.
func TestHCLogAdapter(t *testing.T) {
	tests := []struct {
		name    string
		handler slog.Level
		log     func(l hclog.Logger)
		want    []map[string]any // level, msg and attributes per record
	}{
		{"levels mapped", LevelTrace, func(l hclog.Logger) {
			l.SetLevel(hclog.Trace)
			l.Trace("t")
			l.Debug("d")
			l.Info("i")
			l.Warn("w")
			l.Error("e")
			l.Log(hclog.Warn, "via Log")
		}, []map[string]any{
			{"level": "DEBUG-4", "msg": "t"}, {"level": "DEBUG", "msg": "d"}, {"level": "INFO", "msg": "i"},
			{"level": "WARN", "msg": "w"}, {"level": "ERROR", "msg": "e"}, {"level": "WARN", "msg": "via Log"},
		}},
		{"adapter level Info by default", LevelTrace, func(l hclog.Logger) {
			l.Debug("hidden")
			l.Info("shown")
		}, []map[string]any{{"level": "INFO", "msg": "shown"}}},
		{"handler level filters", slog.LevelWarn, func(l hclog.Logger) {
			if l.IsInfo() || !l.IsWarn() {
				t.Errorf("IsInfo %v IsWarn %v under a Warn handler", l.IsInfo(), l.IsWarn())
			}
			l.Info("hidden")
			l.Warn("shown")
		}, []map[string]any{{"level": "WARN", "msg": "shown"}}},
		{"attributes", slog.LevelInfo, func(l hclog.Logger) {
			l.Named("net").With("peer", "c2").Info("dial", "error", errors.New("refused"), "took", time.Second,
				"fmt", hclog.Fmt("%d/%d", 1, 2), "hex", hclog.Hex(255), 7, "seven", "dangling")
		}, []map[string]any{{"level": "INFO", "msg": "dial", "component": "raft.net", "peer": "c2", "error": "refused",
			"took": "1s", "fmt": "1/2", "hex": "0xff", "7": "seven", "EXTRA_VALUE_AT_END": "dangling"}}},
		{"standard writer infers levels", slog.LevelInfo, func(l hclog.Logger) {
			w := l.StandardWriter(&hclog.StandardLoggerOptions{InferLevels: true})
			io.WriteString(w, "[WARN] slow disk\n[ERR] broken\nplain\n")
			l.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Error}).Print("forced")
		}, []map[string]any{{"level": "WARN", "msg": "slow disk"}, {"level": "ERROR", "msg": "broken"},
			{"level": "INFO", "msg": "plain"}, {"level": "ERROR", "msg": "forced"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf syncBuffer
			tc.log(newRaftLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: tc.handler}))))
			got := buf.records(t)
			if len(got) != len(tc.want) {
				t.Fatalf("records %v, want %v", got, tc.want)
			}
			for i, want := range tc.want {
				if _, ok := want["component"]; !ok {
					want["component"] = "raft"
				}
				for k, v := range want {
					if got[i][k] != v {
						t.Errorf("record %d: %s = %v, want %v (%v)", i, k, got[i][k], v, got[i])
					}
				}
			}
		})
	}
}

// TestRaftLogsAndMetrics: a real node (Raft and the WAL on disk) logs
// Raft's lines as records of its own log and exports raft's and
// raft-wal's metrics on the registry it is given, also when it is opened
// again in the same process.
func TestRaftLogsAndMetrics(t *testing.T) {
	var buf syncBuffer
	reg := prometheus.NewRegistry()
	c := newTestCluster(t, 1, func(id string, cfg *Config) {
		cfg.Logger = slog.New(slog.NewJSONHandler(&buf, nil))
		cfg.Registerer = reg
	})
	mustApply(t, c.leader(10*time.Second), fsm.TypeSetDatacenter, fsm.SetDatacenter{Name: "fra", Update: wire.DatacenterUpdate{SlotLimit: ptr(1)}})

	var leaderLine map[string]any
	for _, r := range buf.records(t) {
		if r["component"] == "raft" && r["msg"] == "entering leader state" {
			leaderLine = r
		}
		if msg, _ := r["msg"].(string); strings.HasPrefix(msg, "{") || r["msg"] == "raft" {
			t.Errorf("raft line logged as text inside a record: %v", r)
		}
	}
	if leaderLine == nil || leaderLine["level"] != "INFO" || leaderLine["leader"] == nil {
		t.Fatalf("no INFO record \"entering leader state\" with a leader attribute: %v", leaderLine)
	}

	c.stop("c1")
	c.start("c1")
	mustApply(t, c.leader(10*time.Second), fsm.TypeSetDatacenter, fsm.SetDatacenter{Name: "ams", Update: wire.DatacenterUpdate{SlotLimit: ptr(1)}})
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*dto.MetricFamily{}
	for _, f := range families {
		got[f.GetName()] = f
	}
	for _, name := range []string{"kroll_raft_wal_log_appends_total", "kroll_raft_wal_log_entries_written_total", "kroll_raft_apply", "kroll_raft_commitTime"} {
		f := got[name]
		if f == nil {
			t.Errorf("no %s", name)
			continue
		}
		var v float64
		switch m := f.GetMetric()[0]; {
		case m.GetCounter() != nil:
			v = m.GetCounter().GetValue()
		case m.GetSummary() != nil:
			v = float64(m.GetSummary().GetSampleCount())
		}
		if v <= 0 {
			t.Errorf("%s = %v, want > 0", name, v)
		}
	}
}
