// Package buildmetrics exports the build stamp of a kroll binary (package
// buildinfo) as the Prometheus metric kroll_build_info. It is separate from
// buildinfo so that binaries without metrics (krollctl) do not link the
// Prometheus client.
package buildmetrics

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kroll-dev/kroll/pkg/buildinfo"
)

// Name is the metric's name.
const Name = "kroll_build_info"

// Collector returns the gauge kroll_build_info{version, commit, go_version}
// = 1 of binary (its "binary" label: kroll-agent, kroll-coordinator).
func Collector(binary string) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: Name,
		Help: "Always 1; the labels say which build of kroll this process runs.",
		ConstLabels: prometheus.Labels{
			"binary": binary, "version": buildinfo.Version(), "commit": buildinfo.Commit(), "go_version": runtime.Version(),
		},
	}, func() float64 { return 1 })
}
