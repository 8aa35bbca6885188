package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/test/vm"
)

// buildBinaries builds the three binaries the demo runs into a temp dir.
func buildBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, pkg := range []string{"../../agent/cmd/kroll-agent", "../../coordinator/cmd/kroll-coordinator", "../../coordinator/cmd/krollctl"} {
		if _, err := vm.BuildGo(t.Context(), pkg, dir); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var summaryRow = regexp.MustCompile(`(?m)^(\S+)\s+(fra1|ams1|stg1|ctl1)\s+(\S+) → (\S+)\s+(\S+)\s+`)

// checkSummary asserts the demo's end: every host on the new kernel, and
// the mitigation retired by it. With train (the sim demo), the staging,
// control and canary datacenters end on the train's build, which came
// from the apt repository through staging, control and the expedited
// edge.
func checkSummary(t *testing.T, out string, hosts int, method string, train bool) {
	t.Helper()
	i := strings.LastIndex(out, "== summary")
	if i < 0 {
		t.Fatalf("no summary in the demo output:\n%s", out)
	}
	rows := summaryRow.FindAllStringSubmatch(out[i:], -1)
	onTrain := map[string]int{}
	if len(rows) != hosts {
		t.Fatalf("summary has %d hosts, want %d:\n%s", len(rows), hosts, out[i:])
	}
	for _, r := range rows {
		if r[3] != "6.1.0-47-amd64" || !strings.HasPrefix(r[4], "6.1.0-") || r[4] == r[3] || r[5] != method {
			t.Errorf("summary row %q: want 6.1.0-47-amd64 → a newer kernel by %s", r[0], method)
		}
		if train && r[4] == trainKernel {
			onTrain[r[2]]++
		}
	}
	if train {
		// Staging, control and the edge's canary datacenter (25 hosts)
		// run the train's build; the other edge datacenter waits for
		// the canary's soak.
		if onTrain["stg1"] != trainPerDC || onTrain["ctl1"] != trainPerDC || onTrain["fra1"]+onTrain["ams1"] != 25 {
			t.Errorf("hosts on the train's build %s by datacenter: %v", trainKernel, onTrain)
		}
	}
	if train {
		checkTrain(t, out)
	}
	if !strings.Contains(out, "retired v2=") {
		t.Errorf("the Copy Fail mitigation was not retired by the fixed kernel")
	}
	t.Logf("demo summary:\n%s", out[i:])
}

// TestDemoSim runs `make demo-sim` (shortened: 25 simulated hosts per
// datacenter) and checks its summary.
func TestDemoSim(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo runs a quorum and 50 agents: make test runs it")
	}
	bin := buildBinaries(t)
	var out bytes.Buffer
	d := newDemo(options{sim: true, perDC: 1, bin: bin}, &out)
	ctx, cancel := context.WithTimeout(t.Context(), 12*time.Minute)
	defer cancel()
	err := d.run(ctx)
	d.cleanup(err != nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	checkSummary(t, out.String(), 50+2*trainPerDC, "kexec", true)
}

// TestDemoVM runs `make demo` (shortened: one VM per datacenter) and
// checks its summary: real kexec upgrades in qemu.
func TestDemoVM(t *testing.T) {
	vm.RequireTools(t)
	bin := buildBinaries(t)
	var out bytes.Buffer
	d := newDemo(options{perDC: 1, bin: bin}, &out)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()
	err := d.run(ctx)
	d.cleanup(err != nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	checkSummary(t, out.String(), 2, "kexec", false)
}

// checkTrain asserts the demo's train section, in order: the CVE before
// (the new hosts mitigated), the build published and made a candidate by
// the feed, staged, validated, the control tier, the expedited edge, and
// the CVE after (every host patched).
func checkTrain(t *testing.T, out string) {
	t.Helper()
	i := strings.Index(out, "== the release train of line "+trainLine)
	if i < 0 {
		t.Fatal("no train section in the demo output")
	}
	out = out[i:]
	for _, want := range []string{
		"$ krollctl cve show " + demoCVE,
		"== the weekly build " + trainBuild + " is published to the apt repository",
		"feed:weekly",
		"== " + trainBuild + " validated",
		"$ krollctl train expedite " + trainLine + " " + trainBuild,
		"the canary datacenter",
		"$ krollctl cve show " + demoCVE,
	} {
		j := strings.Index(out, want)
		if j < 0 {
			t.Fatalf("the train section lacks %q (in order):\n%s", want, out)
		}
		out = out[j+len(want):]
	}
	if strings.Contains(out, "release add") {
		t.Error("the train section ran release add")
	}
	// After: every host patched (the build lists the fix), none only
	// mitigated.
	if !regexp.MustCompile(`(?m)^\s*` + demoCVE + `\s+(\d+)\s+(\d+)\s+0\s+0\s+0\s*$`).MatchString(out) {
		t.Errorf("the last cve show does not have every host patched:\n%s", out)
	}
}
