package fsm

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// BenchmarkHostTableHeap measures what a registered host costs the
// state machine's heap: 100,000 hosts in 330 datacenters, each registered
// by one heartbeat through the Raft path (command encoded, applied by
// FSM.Apply) with the region benchmark's body (test/cluster
// heartbeatLoad.heartbeat: kernel line and kernel, boot id, two policy
// states, a gossip view clamped as the API clamps it, a gossip address).
// After a garbage collection it reports the live heap bytes and objects
// per host. Run it once: -benchtime 1x. With KROLL_BENCH_HEAPPROFILE=FILE
// it writes a heap profile while the table is alive (add
// -memprofilerate 1; read it with go tool pprof -sample_index
// inuse_objects).
func BenchmarkHostTableHeap(b *testing.B) {
	const hosts, dcs = 100000, 330
	perDC := (hosts + dcs - 1) / dcs
	for n := 0; n < b.N; n++ {
		f := New()
		for d := 0; d < dcs; d++ {
			if r := apply(b, f, TypeSetDatacenter, t0, SetDatacenter{Name: fmt.Sprintf("dc%03d", d), Update: wire.DatacenterUpdate{SlotLimit: ptr(5)}}); r.Err != nil {
				b.Fatal(r.Err)
			}
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := 0; i < hosts; i++ {
			dc := fmt.Sprintf("dc%03d", i%dcs)
			registered := 0
			f.View(func(s *State) { registered = len(s.HostsIn(dc)) + 1 })
			hb := wire.Heartbeat{
				HostID: fmt.Sprintf("h%06d", i), Datacenter: dc,
				KernelLine: "6.1", Kernel: "6.1.0-47-amd64", Phase: wire.PhaseIdle,
				BootID: fmt.Sprintf("%08x-6b3c-4d2e-9f1a-%012x", i, i*2654435761%(1<<48)),
				Policies: []wire.PolicyStatus{
					{ID: "copy-fail-af-alg", Version: 3, State: wire.PolicyEnforcing},
					{ID: "userns-create-audit", Version: 1, State: wire.PolicyAuditing},
				},
				View:       &wire.DCView{Alive: min(perDC, registered)},
				GossipAddr: fmt.Sprintf("10.%d.%d.%d:7946", i>>16&0xff, i>>8&0xff, i&0xff),
			}
			data, err := NewCommand(TypeHeartbeat, t0, Heartbeat{Heartbeat: hb, Timing: timing})
			if err != nil {
				b.Fatal(err)
			}
			if r := f.Apply(&raft.Log{Data: data}).(Result); r.Err != nil {
				b.Fatal(r.Err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if path := os.Getenv("KROLL_BENCH_HEAPPROFILE"); path != "" {
			if err := writeHeapProfile(path); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/hosts, "B/host")
		b.ReportMetric(float64(after.HeapObjects-before.HeapObjects)/hosts, "objects/host")
		runtime.KeepAlive(f)
	}
}

// writeHeapProfile writes the heap profile to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("heap profile: %w", err)
	}
	return f.Close()
}
