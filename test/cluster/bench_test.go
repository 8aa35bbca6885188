package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// benchDCs is how many datacenters the benchmark's clients spread over;
// benchLimit is each one's slot limit, high enough that acquires succeed.
const (
	benchDCs   = 8
	benchLimit = 1000
)

// pairFunc runs one acquire+release pair for client i.
type pairFunc func(ctx context.Context, i int) error

// BenchmarkSlotThroughput measures slot acquire+release pairs per second
// and their latency, with 1, 16 and 64 concurrent clients. Client i acts
// for its own host in datacenter i mod 8 and talks to the (i mod 3)-th
// node counting from the leader, so a lone client talks to the leader and
// many spread evenly:
//
//   - kroll/clients=N: a 3-node kroll-coordinator cluster (processes on
//     loopback, raft-wal fsyncing every append), agent API; plus
//     kroll/clients=1,via=follower, a lone client of a follower;
//   - etcd/clients=N: a 3-member etcd cluster (fsync on), with the
//     compare-and-swap semaphore of etcd-based reboot managers (locksmith):
//     one key per datacenter holding a JSON holder list, acquire and
//     release = range + txn(mod_revision unchanged) → put, retried on
//     conflict, over etcd's v3 JSON gateway. It is skipped when etcd is not
//     installed (Debian package etcd-server; `make deps`).
//
// Run: go test ./test/cluster/ -run '^$' -bench SlotThroughput -benchtime 3s
func BenchmarkSlotThroughput(b *testing.B) {
	benchClients := []int{1, 16, 64}
	dcs := make([]string, benchDCs)
	for i := range dcs {
		dcs[i] = fmt.Sprintf("dc%d", i)
	}
	maxClients := slices.Max(benchClients)
	host := func(i int) string { return fmt.Sprintf("bench-%03d", i) }

	b.Run("kroll", func(b *testing.B) {
		c := newCluster(b, 3)
		limits, where := map[string]int{}, map[string]string{}
		for _, dc := range dcs {
			limits[dc] = benchLimit
		}
		for i := range maxClients {
			where[host(i)] = dcs[i%len(dcs)]
		}
		c.setupDatacenters(limits, where)
		// agents[k] talks to the k-th node counting from the leader.
		leader := c.waitLeader(10 * time.Second)
		agents := make([]*client.Client, len(c.nodes))
		for k := range agents {
			agents[k] = c.agent((leader + k) % len(c.nodes))
		}
		pairVia := func(first int) pairFunc {
			return func(ctx context.Context, i int) error {
				req := wire.SlotRequest{HostID: host(i), Datacenter: dcs[i%len(dcs)]}
				cl := agents[(first+i)%len(agents)]
				slot, err := cl.AcquireSlot(ctx, req)
				if err != nil {
					return err
				}
				req.Token = slot.Token
				return cl.AgentRelease(ctx, req)
			}
		}
		for _, n := range benchClients {
			b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) { runPairs(b, n, pairVia(0)) })
		}
		// One client of a follower: every write is forwarded to the leader.
		b.Run("clients=1,via=follower", func(b *testing.B) { runPairs(b, 1, pairVia(1)) })
	})

	b.Run("etcd", func(b *testing.B) {
		bin, err := exec.LookPath("etcd")
		if err != nil {
			b.Skip("etcd is not installed (Debian package etcd-server; `make deps` installs it)")
		}
		e := newEtcdCluster(b, bin, 3)
		for _, dc := range dcs {
			if err := e.put(context.Background(), 0, semaphoreKey(dc), semaphore{Semaphore: benchLimit, Max: benchLimit}); err != nil {
				b.Fatal(err)
			}
		}
		leader := e.leader(b)
		var conflicts atomic.Int64
		pair := func(ctx context.Context, i int) error {
			key, member := semaphoreKey(dcs[i%len(dcs)]), (leader+i)%len(e.urls)
			n, err := e.acquire(ctx, member, key, host(i))
			conflicts.Add(int64(n))
			if err != nil {
				return err
			}
			n, err = e.release(ctx, member, key, host(i))
			conflicts.Add(int64(n))
			return err
		}
		for _, n := range benchClients {
			b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
				before := conflicts.Load()
				runPairs(b, n, pair)
				b.ReportMetric(float64(conflicts.Load()-before)/float64(b.N), "cas-retries/pair")
			})
		}
	})
}

// runPairs runs b.N pairs over n concurrent clients and reports pairs/s
// and the pairs' p50 and p99 latency in milliseconds.
func runPairs(b *testing.B, n int, pair pairFunc) {
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		firstErr error
		errOnce  sync.Once
	)
	lat := make([][]time.Duration, n)
	b.ResetTimer()
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				t0 := time.Now()
				err := pair(ctx, i)
				lat[i] = append(lat[i], time.Since(t0))
				cancel()
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	ms := func(q float64) float64 {
		return float64(all[min(len(all)-1, int(q*float64(len(all))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "pairs/s")
	b.ReportMetric(ms(0.50), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
}

// etcdCluster is a 3-member etcd cluster of processes on loopback, with
// data directories on disk, used through etcd's v3 JSON gateway.
type etcdCluster struct {
	urls []string
	hc   *http.Client
}

// newEtcdCluster starts n etcd members and waits until every one reports
// healthy; they are SIGKILLed when the benchmark ends.
func newEtcdCluster(tb testing.TB, bin string, n int) *etcdCluster {
	tb.Helper()
	dir := tb.TempDir()
	addrs := freeAddrs(tb, 2*n)
	var initial []string
	for i := range n {
		initial = append(initial, fmt.Sprintf("e%d=http://%s", i+1, addrs[2*i+1]))
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 512, 256
	e := &etcdCluster{hc: &http.Client{Transport: tr, Timeout: requestTimeout}}
	for i := range n {
		name := fmt.Sprintf("e%d", i+1)
		clientURL, peerURL := "http://"+addrs[2*i], "http://"+addrs[2*i+1]
		logf, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			tb.Fatal(err)
		}
		cmd := exec.Command(bin, "--name", name, "--data-dir", filepath.Join(dir, name),
			"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
			"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "kroll-bench", "--logger", "zap", "--log-level", "warn")
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			logf.Close()
			tb.Fatalf("start etcd %s: %v", name, err)
		}
		exited := make(chan struct{})
		go func() {
			_ = cmd.Wait()
			logf.Close()
			close(exited)
		}()
		tb.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
		e.urls = append(e.urls, clientURL)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, u := range e.urls {
		for {
			resp, err := e.hc.Get(u + "/health")
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`"true"`)) {
					break
				}
			}
			if time.Now().After(deadline) {
				tb.Fatalf("etcd at %s not healthy within 30s", u)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return e
}

// leader returns the index of the member that leads.
func (e *etcdCluster) leader(tb testing.TB) int {
	tb.Helper()
	for i := range e.urls {
		var st struct {
			Header struct {
				MemberID string `json:"member_id"`
			} `json:"header"`
			Leader string `json:"leader"`
		}
		if err := e.call(context.Background(), i, "/v3/maintenance/status", map[string]any{}, &st); err != nil {
			tb.Fatal(err)
		}
		if st.Leader != "" && st.Leader == st.Header.MemberID {
			return i
		}
	}
	tb.Fatal("etcd: no member leads")
	return -1
}

// semaphore is the value of a datacenter's key, in locksmith's format:
// Semaphore free slots of Max, and the holders.
type semaphore struct {
	Semaphore int      `json:"semaphore"`
	Max       int      `json:"max"`
	Holders   []string `json:"holders"`
}

// semaphoreKey is the etcd key of datacenter dc's semaphore.
func semaphoreKey(dc string) string { return "kroll-bench/rebootlock/" + dc }

// acquire adds holder to the semaphore at key with compare-and-swap and
// returns how many times it had to retry on a conflict.
func (e *etcdCluster) acquire(ctx context.Context, member int, key, holder string) (int, error) {
	return e.update(ctx, member, key, func(s *semaphore) (bool, error) {
		if slices.Contains(s.Holders, holder) {
			return false, nil // recursive
		}
		if s.Semaphore <= 0 {
			return false, fmt.Errorf("etcd: semaphore %s is full", key)
		}
		s.Semaphore--
		s.Holders = append(s.Holders, holder)
		return true, nil
	})
}

// release removes holder from the semaphore at key with compare-and-swap
// and returns how many times it had to retry on a conflict.
func (e *etcdCluster) release(ctx context.Context, member int, key, holder string) (int, error) {
	return e.update(ctx, member, key, func(s *semaphore) (bool, error) {
		i := slices.Index(s.Holders, holder)
		if i < 0 {
			return false, nil
		}
		s.Semaphore++
		s.Holders = slices.Delete(s.Holders, i, i+1)
		return true, nil
	})
}

// update reads the semaphore at key (a linearizable range), lets change
// modify it, and writes it back with a txn that succeeds only if the key's
// mod_revision is still the one read, retrying on conflict.
func (e *etcdCluster) update(ctx context.Context, member int, key string, change func(*semaphore) (bool, error)) (int, error) {
	for retries := 0; ; retries++ {
		var rr struct {
			Kvs []struct {
				Value       []byte `json:"value"`
				ModRevision string `json:"mod_revision"`
			} `json:"kvs"`
		}
		if err := e.call(ctx, member, "/v3/kv/range", map[string]any{"key": []byte(key)}, &rr); err != nil {
			return retries, err
		}
		if len(rr.Kvs) != 1 {
			return retries, fmt.Errorf("etcd: key %s not found", key)
		}
		var s semaphore
		if err := json.Unmarshal(rr.Kvs[0].Value, &s); err != nil {
			return retries, fmt.Errorf("etcd: key %s: %w", key, err)
		}
		write, err := change(&s)
		if err != nil || !write {
			return retries, err
		}
		value, err := json.Marshal(s)
		if err != nil {
			return retries, err
		}
		var tr struct {
			Succeeded bool `json:"succeeded"`
		}
		txn := map[string]any{
			"compare": []map[string]any{{"key": []byte(key), "target": "MOD", "result": "EQUAL", "mod_revision": rr.Kvs[0].ModRevision}},
			"success": []map[string]any{{"request_put": map[string]any{"key": []byte(key), "value": value}}},
		}
		if err := e.call(ctx, member, "/v3/kv/txn", txn, &tr); err != nil {
			return retries, err
		}
		if tr.Succeeded {
			return retries, nil
		}
	}
}

// put writes v as JSON at key.
func (e *etcdCluster) put(ctx context.Context, member int, key string, v any) error {
	value, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return e.call(ctx, member, "/v3/kv/put", map[string]any{"key": []byte(key), "value": value}, nil)
}

// call POSTs a JSON request to member's gateway (bytes fields travel as
// base64, int64 fields as strings) and decodes the answer into out.
func (e *etcdCluster) call(ctx context.Context, member int, path string, in, out any) error {
	data, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.urls[member]+path, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.hc.Do(req)
	if err != nil {
		return fmt.Errorf("etcd %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("etcd %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("etcd %s: HTTP %d: %s", path, resp.StatusCode, strconv.Quote(string(body)))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(body, out)
}
