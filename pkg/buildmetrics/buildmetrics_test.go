package buildmetrics

import (
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kroll-dev/kroll/pkg/buildinfo"
)

func TestCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(Collector("kroll-agent"))
	want := `# HELP kroll_build_info Always 1; the labels say which build of kroll this process runs.
# TYPE kroll_build_info gauge
kroll_build_info{binary="kroll-agent",commit="` + buildinfo.Commit() + `",go_version="` + runtime.Version() + `",version="` + buildinfo.Version() + `"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), Name); err != nil {
		t.Fatal(err)
	}
}
