package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// Unit tests of BenchmarkRegionHeartbeats' load generator helpers: a
// wrong parameter, echoed field or quantile would make its figures wrong
// without failing the benchmark.

func TestRegionParamsFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		rows    []int
		window  time.Duration
		workers int
		dcs     int
		wantErr bool
	}{
		{name: "defaults", rows: []int{10_000, 50_000, 100_000, 200_000}, window: 30 * time.Second, workers: 8192, dcs: 330},
		{name: "overrides", env: map[string]string{benchAgentsEnv: "10000, 50_000", benchWindowEnv: "5s", benchWorkersEnv: "64", benchDCsEnv: "7"},
			rows: []int{10_000, 50_000}, window: 5 * time.Second, workers: 64, dcs: 7},
		{name: "zero agents", env: map[string]string{benchAgentsEnv: "0"}, wantErr: true},
		{name: "agents not a number", env: map[string]string{benchAgentsEnv: "10k"}, wantErr: true},
		{name: "empty agents entry", env: map[string]string{benchAgentsEnv: "10000,"}, wantErr: true},
		{name: "window not a duration", env: map[string]string{benchWindowEnv: "30"}, wantErr: true},
		{name: "negative warm-up", env: map[string]string{benchWarmupEnv: "-1s"}, wantErr: true},
		{name: "zero workers", env: map[string]string{benchWorkersEnv: "0"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, p, err := regionParamsFromEnv(func(k string) string { return tt.env[k] })
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if !slices.Equal(rows, tt.rows) || p.window != tt.window || p.workers != tt.workers || p.dcs != tt.dcs {
				t.Errorf("got rows %v window %s workers %d dcs %d, want %v %s %d %d", rows, p.window, p.workers, p.dcs, tt.rows, tt.window, tt.workers, tt.dcs)
			}
			if p.interval != 10*time.Second || p.timeout != 10*time.Second || p.slotEvery != 200*time.Millisecond {
				t.Errorf("interval %s timeout %s slot period %s: not the issue's 10s, 10s, 200ms", p.interval, p.timeout, p.slotEvery)
			}
		})
	}
}

// Heartbeat and answer types with and without a version the agent echoes.
type (
	hbWithVersion struct {
		HostID         string `json:"host_id"`
		DesiredVersion string `json:"desired_version,omitempty"`
	}
	hbWithNumber struct {
		HostID  string `json:"host_id"`
		Version int64  `json:"desired_version,omitempty"`
	}
	hbPlain struct {
		HostID   string `json:"host_id"`
		Policies []int  `json:"policies,omitempty"`
	}
	answerSameName struct {
		Policies       []int  `json:"policies"`
		DesiredVersion string `json:"desired_version,omitempty"`
	}
	answerShortName struct {
		Version string `json:"version"`
	}
	answerPlain struct {
		Policies []int `json:"policies"`
	}
)

func TestEchoField(t *testing.T) {
	tests := []struct {
		name   string
		hb, ds reflect.Type
		answer string
		want   string // the value sent back; "" none
	}{
		{name: "same name", hb: reflect.TypeFor[hbWithVersion](), ds: reflect.TypeFor[answerSameName](),
			answer: `{"policies":[{"id":"p","version":7}],"desired_version":"ab12"}`, want: `"ab12"`},
		{name: "answer without desired_ prefix", hb: reflect.TypeFor[hbWithVersion](), ds: reflect.TypeFor[answerShortName](),
			answer: `{"version": "v9"}`, want: `"v9"`},
		{name: "number", hb: reflect.TypeFor[hbWithNumber](), ds: reflect.TypeFor[answerSameName](),
			answer: `{"desired_version":42}`, want: `42`},
		{name: "answer without the field", hb: reflect.TypeFor[hbWithVersion](), ds: reflect.TypeFor[answerSameName](),
			answer: `{"policies":[]}`},
		{name: "value of the wrong type is not sent", hb: reflect.TypeFor[hbWithNumber](), ds: reflect.TypeFor[answerSameName](),
			answer: `{"desired_version":"ab12"}`},
		{name: "shared name without version is no echo", hb: reflect.TypeFor[hbPlain](), ds: reflect.TypeFor[answerPlain]()},
		{name: "answer type lacks it", hb: reflect.TypeFor[hbWithVersion](), ds: reflect.TypeFor[answerPlain]()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := findEchoField(tt.hb, tt.ds)
			if tt.answer == "" {
				if e != nil {
					t.Fatalf("found an echo field %q, want none", e.key)
				}
				return
			}
			if e == nil {
				t.Fatal("no echo field found")
			}
			hb := reflect.New(tt.hb)
			if v := e.value([]byte(tt.answer)); v != nil {
				e.set(hb.Interface(), v)
			}
			data, err := json.Marshal(hb.Interface())
			if err != nil {
				t.Fatal(err)
			}
			var sent map[string]json.RawMessage
			if err := json.Unmarshal(data, &sent); err != nil {
				t.Fatal(err)
			}
			if got := string(sent["desired_version"]); got != tt.want {
				t.Errorf("sent desired_version %s, want %s (body %s)", got, tt.want, data)
			}
		})
	}
}

func TestMsQuantile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		var d []time.Duration
		for _, n := range ns {
			d = append(d, time.Duration(n)*time.Millisecond)
		}
		return d
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // 100 … 1, unsorted
	}
	tests := []struct {
		name string
		lat  []time.Duration
		q    float64
		want float64
	}{
		{name: "nothing completed: the whole window", q: 0.5, want: 30_000},
		{name: "one sample", lat: ms(7), q: 0.99, want: 7},
		{name: "median of 100", lat: ms(hundred...), q: 0.5, want: 51},
		{name: "p99 of 100", lat: ms(hundred...), q: 0.99, want: 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := msQuantile(tt.lat, tt.q, 30*time.Second); got != tt.want {
				t.Errorf("msQuantile = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestProcStats(t *testing.T) {
	ballast := make([]byte, 64<<20)
	for i := range ballast {
		ballast[i] = byte(i)
	}
	busy := time.Now()
	for time.Since(busy) < 300*time.Millisecond {
		ballast[len(ballast)/2]++
	}
	pid := os.Getpid()
	mb, err := vmRSSMB(pid)
	if err != nil {
		t.Fatal(err)
	}
	if mb < 64 {
		t.Errorf("VmRSS %.1f MiB with 64 MiB touched", mb)
	}
	cpu, err := processCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	if cpu < 100*time.Millisecond {
		t.Errorf("CPU time %s after 300ms of spinning", cpu)
	}
	if _, err := vmRSSMB(-1); err == nil {
		t.Error("VmRSS of no process: no error")
	}
	runtime.KeepAlive(ballast)
}

// TestHeartbeatLoadCache checks that what send puts on the wire from its
// per-agent cache (hbWire) is what the heartbeat it stands for encodes
// to: the body (byte for byte as json.Encoder writes lg.heartbeat(i),
// hence decoding to it), the digest and host id headers and the constant
// ones, before and after keepVersion changes the echoed version, and
// that the body is rebuilt only when the version changed.
func TestHeartbeatLoadCache(t *testing.T) {
	type seen struct {
		body   []byte
		header http.Header
	}
	var (
		mu     sync.Mutex
		last   seen
		answer atomic.Pointer[string]
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		last = seen{body, r.Header.Clone()}
		mu.Unlock()
		_, _ = io.WriteString(w, *answer.Load())
	}))
	defer srv.Close()
	p := regionParams{agents: 700, dcs: 330, timeout: 10 * time.Second, workers: 4}
	c := &cluster{tb: t, agentToken: "tok", nodes: []*node{{id: "c1", httpAddr: strings.TrimPrefix(srv.URL, "http://")}}}
	lg := newHeartbeatLoad(c, p)
	if lg.echo == nil {
		t.Fatal("no echo field: wire.Heartbeat has desired_version")
	}
	v1, v2 := strings.Repeat("a", 64), strings.Repeat("b", 64)
	// Each step sends the agent's heartbeat (echoing the version of the
	// previous step's answer) and answers with answer's version.
	steps := []struct {
		name    string
		answer  string // desired_version of the answer; "" none
		echoes  string // desired_version the heartbeat must carry
		rebuilt bool   // the body must be rebuilt for this heartbeat
	}{
		{name: "first heartbeat", answer: v1, rebuilt: true},
		{name: "version learnt", answer: v1, echoes: v1, rebuilt: true},
		{name: "same version again", answer: v2, echoes: v1},
		{name: "version changed", answer: v2, echoes: v2, rebuilt: true},
		{name: "same version again after the change", echoes: v2},
		{name: "version gone", echoes: "", rebuilt: true},
		{name: "still none", echoes: ""},
	}
	for _, i := range []int{0, 1, 331, 699} {
		var prev *hbWire
		for _, st := range steps {
			t.Run(fmt.Sprintf("agent %d/%s", i, st.name), func(t *testing.T) {
				ans := `{"heartbeat_interval_seconds":10}`
				if st.answer != "" {
					ans = `{"heartbeat_interval_seconds":10,"desired_version":"` + st.answer + `","unchanged":true}`
				}
				answer.Store(&ans)
				want := lg.heartbeat(i)
				if want.DesiredVersion != st.echoes {
					t.Fatalf("heartbeat echoes %q, want %q", want.DesiredVersion, st.echoes)
				}
				var enc bytes.Buffer
				if err := json.NewEncoder(&enc).Encode(want); err != nil {
					t.Fatal(err)
				}
				if out, why := lg.send(context.Background(), i); out != hbAnswered {
					t.Fatalf("send: %v %s", out, why)
				}
				mu.Lock()
				got := last
				mu.Unlock()
				if !bytes.Equal(got.body, enc.Bytes()) {
					t.Errorf("body\n%s\nwant (json.Encoder)\n%s", got.body, enc.Bytes())
				}
				var dec wire.Heartbeat
				if err := json.Unmarshal(got.body, &dec); err != nil || !reflect.DeepEqual(dec, want) {
					t.Errorf("body decodes to %+v (%v), want %+v", dec, err, want)
				}
				for k, v := range map[string]string{
					wire.HeartbeatDigestHeader: wire.HeartbeatDigest(want), wire.HostIDHeader: want.HostID,
					"Content-Type": "application/json", "Authorization": "Bearer tok",
				} {
					if g := got.header.Values(k); len(g) != 1 || g[0] != v {
						t.Errorf("header %s = %q, want %q", k, g, v)
					}
				}
				cur := lg.agents[i].sent.Load()
				if rebuilt := cur != prev; rebuilt != st.rebuilt {
					t.Errorf("body rebuilt %v, want %v", rebuilt, st.rebuilt)
				}
				prev = cur
			})
		}
	}
}

// BenchmarkHeartbeatLoadSend measures the load generator's cost per
// heartbeat after an agent's first (body, request, answer read) against an in-process server
// answering a desired state of today's size, from 64 goroutines: the
// figure includes the server's own cost, so it bounds the generator's.
// cpu_us/op is the process's CPU per heartbeat (client and server): at
// 20,000 heartbeats/s (200,000 agents) the generator needs less than
// 20,000 × cpu_us/op µs of CPU per second.
//
// Run: go test ./test/cluster/ -run '^$' -bench HeartbeatLoadSend
func BenchmarkHeartbeatLoadSend(b *testing.B) {
	answer := []byte(`{"heartbeat_interval_seconds":10,"datacenter":{"effective_limit":5,"min_healthy_pct":0,"hosts":303},` +
		`"gossip_seeds":["10.0.1.2:7946","10.0.1.5:7946","10.0.2.9:7946"]}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(answer)
	}))
	defer srv.Close()
	p := regionParams{agents: 200_000, dcs: 330, timeout: 10 * time.Second, workers: 256}
	c := &cluster{tb: b, agentToken: "t", nodes: []*node{{id: "c1", httpAddr: strings.TrimPrefix(srv.URL, "http://")}}}
	lg := newHeartbeatLoad(c, p)
	// Each agent the run uses has its heartbeat encoded beforehand, as
	// its first heartbeat (registration, before BenchmarkRegionHeartbeats'
	// window) does: the figures are those of the heartbeats after it.
	for i := range min(b.N+1, p.agents) {
		if _, err := lg.encoded(i); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	b.SetParallelism(32) // × GOMAXPROCS goroutines
	b.ReportAllocs()
	cpu0, err := processCPU(os.Getpid())
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1)) % p.agents
			if out, why := lg.send(context.Background(), i); out != hbAnswered {
				b.Errorf("heartbeat %d: %s", i, why)
				return
			}
		}
	})
	b.StopTimer()
	cpu1, err := processCPU(os.Getpid())
	if err != nil {
		b.Fatal(err)
	}
	// CPU per heartbeat, independent of what else runs on the machine.
	b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "cpu_us/op")
}
