//go:build (386 || amd64) && linux

package bpf_test

import (
	"testing"
	"time"

	"github.com/kroll-dev/kroll/test/vm"
)

// BenchmarkLSMOverhead boots Debian 6.1 and 6.12 one after the other and
// runs lsmcheck -bench-only: the cost of socket(AF_INET)+bind+close with
// no program, with the socket-family program enforcing AF_ALG on bind
// only (the production Copy Fail mitigation) and on create and bind, and
// the time to load, configure and attach the socket-family program. Each
// kernel line runs once whatever b.N is; run it with
//
//	CI=true go test -run '^$' -bench LSMOverhead -benchtime 1x ./bpf/
//
// ns/op is the no-program cost (p10 of batches); the other metrics:
// bind-ns/op and both-ns/op with the program, bind-ratio and both-ratio
// against no program (p10 and, suffixed -med, medians), load-first-ms (the
// first load in a process, which parses the kernel's BTF) and
// load-warm-ms (median of 5 later loads), both including attach.
func BenchmarkLSMOverhead(b *testing.B) {
	prog := vm.TestProgram(b, "github.com/kroll-dev/kroll/test/vm/guests/lsmcheck")
	for _, line := range kernelLines {
		b.Run(line.name, func(b *testing.B) {
			k := vm.TestKernel(b, line.pattern)
			res, err := vm.Run(b.Context(), vm.Config{
				Kernel: k, Program: prog, Args: []string{"-bench-only"}, Modules: guestModules,
				MemoryMB: 1024, Timeout: 8 * time.Minute,
			})
			if err != nil {
				b.Fatal(err)
			}
			if res.ExitCode != 0 {
				b.Fatalf("%s: guest exit %d; console:\n%s", k.Release, res.ExitCode, res.Tail(40))
			}
			var load map[string]any
			if err := res.Decode("load_attach_ms", &load); err != nil {
				b.Fatal(err)
			}
			var bench map[string]float64
			if err := res.Decode("bench", &bench); err != nil {
				b.Fatal(err)
			}
			f := func(v any) float64 { x, _ := v.(float64); return x }
			b.ReportMetric(bench["none_p10_ns"], "ns/op")
			b.ReportMetric(bench["bind_p10_ns"], "bind-ns/op")
			b.ReportMetric(bench["create_bind_p10_ns"], "both-ns/op")
			b.ReportMetric(bench["bind_ratio_p10"], "bind-ratio")
			b.ReportMetric(bench["create_bind_ratio_p10"], "both-ratio")
			b.ReportMetric(bench["bind_ratio_median"], "bind-ratio-med")
			b.ReportMetric(bench["create_bind_ratio_median"], "both-ratio-med")
			b.ReportMetric(f(load["first"]), "load-first-ms")
			b.ReportMetric(f(load["warm_median"]), "load-warm-ms")
			b.Logf("%s: socket(AF_INET)+bind+close, %.0f iterations per state, p10 (median) ns: none %.0f (%.0f), "+
				"bind only %.0f (%.0f) ratio %.3f (%.3f), create+bind %.0f (%.0f) ratio %.3f (%.3f); "+
				"program run time socket_create %.0f ns, socket_bind %.0f ns; "+
				"load+configure+attach first %.1f ms (load %.1f + attach %.1f), later median %.1f ms (load %.1f + attach %.1f)",
				k.Release, bench["iterations"], bench["none_p10_ns"], bench["none_median_ns"],
				bench["bind_p10_ns"], bench["bind_median_ns"], bench["bind_ratio_p10"], bench["bind_ratio_median"],
				bench["create_bind_p10_ns"], bench["create_bind_median_ns"], bench["create_bind_ratio_p10"], bench["create_bind_ratio_median"],
				bench["prog_ns_socket_create"], bench["prog_ns_socket_bind"],
				f(load["first"]), f(load["first_load"]), f(load["first_attach"]),
				f(load["warm_median"]), f(load["warm_load_median"]), f(load["warm_attach_median"]))
		})
	}
}
