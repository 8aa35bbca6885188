package store

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// BenchmarkHeardHeap measures what the liveness table costs a node per
// host: 100,000 hosts heard (Store.Heard, each id a string of its own as
// a decoded request's is), then after a garbage collection the live heap
// bytes and objects per host. The leader's table (heard) has the same
// shape as the one measured (pending). Run it once: -benchtime 1x.
func BenchmarkHeardHeap(b *testing.B) {
	const hosts = 100000
	for n := 0; n < b.N; n++ {
		s := &Store{}
		ids := make([]string, hosts)
		for i := range ids {
			ids[i] = fmt.Sprintf("h%06d", i)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		now := time.Now()
		for i, id := range ids {
			s.Heard(string([]byte(id)), now.Add(time.Duration(i)))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/hosts, "B/host")
		b.ReportMetric(float64(after.HeapObjects-before.HeapObjects)/hosts, "objects/host")
		runtime.KeepAlive(s)
		runtime.KeepAlive(ids)
	}
}
