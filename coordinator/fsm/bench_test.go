package fsm

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// BenchmarkApplyAcquireRelease measures the state machine alone: one
// acquire and one release (decoded, decided, applied) in a region of 100
// datacenters with 100 hosts each.
func BenchmarkApplyAcquireRelease(b *testing.B) {
	f := New()
	for d := 0; d < 100; d++ {
		fleet(b, f, fmt.Sprintf("dc%d", d), 100, wire.DatacenterUpdate{SlotLimit: ptr(5), MinHealthyPct: ptr(50)})
	}
	acq := make([][]byte, 100)
	for d := range acq {
		acq[d], _ = NewCommand(TypeAcquire, t0, Acquire{Datacenter: fmt.Sprintf("dc%d", d), Host: fmt.Sprintf("dc%d-h7", d), Owner: OwnerAgent, Timing: timing})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d := i % 100
		r := f.Apply(&raft.Log{Data: acq[d]}).(Result)
		if r.Err != nil {
			b.Fatal(r.Err)
		}
		rel, _ := NewCommand(TypeRelease, t0, SlotRelease{Datacenter: r.Slot.Datacenter, Host: r.Slot.HostID, Token: r.Slot.Token})
		if r := f.Apply(&raft.Log{Data: rel}).(Result); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
}

// BenchmarkDispatch measures the registry's dispatch alone: a command
// refused at once (an unknown host), by the typed path (Exec, the
// simulator's) and by the log's (decode, then dispatch).
func BenchmarkDispatch(b *testing.B) {
	f := New()
	data, err := NewCommand(TypeRemoveHost, t0, RemoveHost{Host: "nope"})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("exec", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if r := f.Exec(t0, RemoveHost{Host: "nope"}); r.Err == nil {
				b.Fatal("applied")
			}
		}
	})
	b.Run("apply", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if r := f.Apply(&raft.Log{Data: data}).(Result); r.Err == nil {
				b.Fatal("applied")
			}
		}
	})
}
