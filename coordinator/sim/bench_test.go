package sim

import (
	"context"
	"testing"
)

// BenchmarkDefaultFleet simulates the built-in fleet (330 datacenters,
// 100,000 hosts) and reports the wall time per simulation and the run's
// metrics.
func BenchmarkDefaultFleet(b *testing.B) {
	f, err := DefaultFleet(330, 100000)
	if err != nil {
		b.Fatal(err)
	}
	tests := []struct {
		name string
		opt  Options
	}{
		{"normal", Options{Seed: 1}},
		{"expedite", Options{Seed: 1, Expedite: true}},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			var r *Result
			for b.Loop() {
				var err error
				if r, err = Run(context.Background(), f, tt.opt); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "sim-s/op")
			b.ReportMetric(r.MakespanHours, "makespan-h")
			b.ReportMetric(r.LowerBoundHours, "bound-h")
			b.ReportMetric(r.Efficiency, "efficiency")
			b.ReportMetric(r.MaxDCOutFraction, "max-dc-out")
			b.ReportMetric(float64(r.CapacityFloorViolations), "floor-violations")
		})
	}
}
