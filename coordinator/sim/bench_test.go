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

// BenchmarkSimulateWeeks simulates 12 weeks of the release train on the
// built-in fleet (330 datacenters, 100,000 hosts; weekly builds, the
// second failing staging, a CVE on day 20) and reports the wall time per
// simulation and the run's headline metrics.
func BenchmarkSimulateWeeks(b *testing.B) {
	f, err := DefaultFleet(330, 100000)
	if err != nil {
		b.Fatal(err)
	}
	opt := TrainOptions{Seed: 1, Weeks: 12, FailBuild: 2, CVE: true, CVEDay: 20}
	var r *TrainResult
	for b.Loop() {
		if r, err = RunTrain(context.Background(), f, opt); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "sim-s/op")
	b.ReportMetric(r.DaysBehind["edge"].Max, "edge-behind-max-d")
	b.ReportMetric(r.CVE.ExposureHostDays, "exposure-host-d")
	b.ReportMetric(r.CVE.ExposureHostDaysMitigated, "exposure-mitigated-host-d")
	b.ReportMetric(float64(r.CapacityFloorViolations+r.SlotLimitViolations), "violations")
}
