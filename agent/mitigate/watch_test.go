package mitigate

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kroll-dev/kroll/bpf"
	"github.com/kroll-dev/kroll/pkg/kversion"
	"github.com/kroll-dev/kroll/pkg/policy"
)

// chanReader is a recordReader fed by a channel.
type chanReader struct {
	ch   chan []byte
	done chan struct{}
	once sync.Once
}

func (r *chanReader) Read() ([]byte, error) {
	select {
	case b := <-r.ch:
		return b, nil
	case <-r.done:
		return nil, fmt.Errorf("closed: %w", os.ErrClosed)
	}
}

func (r *chanReader) Close() error { r.once.Do(func() { close(r.done) }); return nil }

// eventFake is an Enforcer with events.
type eventFake struct {
	Enforcer
	mu      sync.Mutex
	readers map[string]*chanReader
}

func (f *eventFake) Installed() ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for id := range f.readers {
		ids = append(ids, id)
	}
	return ids, nil
}

func (f *eventFake) openEvents(id string) (recordReader, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.readers[id], nil
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func record(t *testing.T, e bpf.Event) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, e); err != nil {
		t.Fatal(err)
	}
	if b.Len() != bpf.EventSize {
		t.Fatalf("record of %d bytes", b.Len())
	}
	return b.Bytes()
}

func TestWatch(t *testing.T) {
	r := &chanReader{ch: make(chan []byte, 200), done: make(chan struct{})}
	enf := &eventFake{readers: map[string]*chanReader{"copy-fail": r}}
	k, err := kversion.Parse("6.1.1")
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{StateDir: t.TempDir(), Kernel: &k, Enforcer: enf, WatchInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	p := policy.Policy{
		ID: "copy-fail", Version: 3, Kind: policy.KindSocketFamily, Mode: policy.ModeAudit,
		Params:    policy.Params{Family: "AF_ALG", Operations: []policy.Operation{policy.OpBind}},
		AppliesTo: policy.AppliesTo{FixedIn: []string{"6.1.170"}},
		Expires:   time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	doc, err := p.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.storeRaw(p.ID, doc, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	ev := bpf.Event{PID: 42, UID: 65534, Kind: bpf.KindSocketFamily, Op: bpf.OpSocketBind,
		Exe: bpf.Key{Dev: bpf.KernelDev(8, 1), Ino: 1234}, Arg: 38}
	copy(ev.Comm[:], "mitcheck")
	copy(ev.Name[:], "authencesn(hmac(sha256),cbc(aes))")
	r.ch <- record(t, ev)
	denied := ev
	denied.Verdict = -1
	r.ch <- record(t, denied)
	// More executables than MaxExeLabels: the rest count as "other".
	for i := range MaxExeLabels + 5 {
		e := ev
		e.Exe.Ino = uint64(10000 + i)
		r.ch <- record(t, e)
	}

	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg)
	var logs syncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Watch(ctx, logger, metrics) }()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(logs.String(), "\n") < MaxExeLabels+7 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != MaxExeLabels+7 {
		t.Fatalf("%d log lines, want %d:\n%s", len(lines), MaxExeLabels+7, logs.String())
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"msg": "mitigation event", "level": "INFO", "policy": "copy-fail", "version": 3.0, "mode": "audit",
		"verdict": "audited", "pid": 42.0, "uid": 65534.0, "comm": "mitcheck", "exe": "8:1:1234",
		"exe_ino": 1234.0, "name": "authencesn(hmac(sha256),cbc(aes))", "op": bpf.OpSocketBind.String(), "arg": 38.0,
	} {
		if first[k] != want {
			t.Errorf("log %s = %v, want %v (line %s)", k, first[k], want, lines[0])
		}
	}
	if !strings.Contains(lines[1], `"verdict":"denied"`) || !strings.Contains(lines[1], `"level":"WARN"`) {
		t.Errorf("denied event logged as %s", lines[1])
	}
	got := counts(t, reg)
	for labels, want := range map[string]float64{
		"copy-fail/audited/8:1:1234": 1,
		"copy-fail/denied/8:1:1234":  1,
		// 8:1:1234 plus MaxExeLabels-1 more get their own label.
		"copy-fail/audited/other": 6,
	} {
		if got[labels] != want {
			t.Errorf("%s = %v, want %v", labels, got[labels], want)
		}
	}
	if len(got) != MaxExeLabels+2 {
		t.Errorf("%d series, want %d", len(got), MaxExeLabels+2)
	}
}

// counts returns kroll_mitigation_events_total by policy/verdict/exe.
func counts(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "kroll_mitigation_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			out[l["policy"]+"/"+l["verdict"]+"/"+l["exe"]] = m.GetCounter().GetValue()
		}
	}
	return out
}

func TestWatchWithoutEvents(t *testing.T) {
	k, err := kversion.Parse("6.1.1")
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{StateDir: t.TempDir(), Kernel: &k, Enforcer: struct{ Enforcer }{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Watch(context.Background(), nil, nil); err == nil {
		t.Fatal("Watch with an enforcer without events succeeded")
	}
}
