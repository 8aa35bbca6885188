package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestSimulate(t *testing.T) {
	dir := t.TempDir()
	fleet := filepath.Join(dir, "fleet.json")
	if err := os.WriteFile(fleet, []byte(`{"datacenters": [
		{"name": "stg", "hosts": 4, "tier": "staging", "slot_limit": 1, "min_healthy_pct": 50},
		{"name": "fra1", "hosts": 30, "window": "Mon-Sun 02:00-04:00 Europe/Berlin", "slot_pct": 10, "min_healthy_pct": 80},
		{"name": "nrt1", "hosts": 20, "window": "Mon-Sun 02:00-04:00 Asia/Tokyo", "slot_limit": 2, "min_healthy_pct": 80}
	]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	plot := filepath.Join(dir, "plot.svg")
	tests := []struct {
		name     string
		args     []string
		code     int
		inStdout []string
		inStderr string
	}{
		{"table", []string{"simulate", "--dcs", "20", "--hosts", "1500", "--expedite"}, 0,
			[]string{"makespan_hours", "lower_bound_hours", "efficiency", "max_dc_out_fraction", "capacity_floor_violations  0", "edge-100%"}, ""},
		{"json-fleet-file", []string{"simulate", "--fleet", fleet, "--output", "json", "--fail-pct", "1", "--plot", plot}, 0,
			[]string{`"makespan_hours"`, `"lower_bound_hours"`, `"efficiency"`, `"max_dc_out_fraction"`, `"capacity_floor_violations": 0`, `"hosts": 54`, `"datacenters": 3`}, ""},
		{"cold-budget", []string{"simulate", "--fleet", fleet, "--reboot", "cold", "--budget", "0", "--operator-delay", "10m"}, 0, []string{"0 per wave"}, ""},
		{"bad-operator-delay", []string{"simulate", "--operator-delay", "0s"}, 2, nil, "positive duration"},
		{"bad-output", []string{"simulate", "--output", "yaml"}, 2, nil, "want table or json"},
		{"bad-reboot", []string{"simulate", "--reboot", "pxe"}, 2, nil, "want kexec or cold"},
		{"png", []string{"simulate", "--plot", "x.png"}, 2, nil, "only SVG"},
		{"fleet-and-dcs", []string{"simulate", "--fleet", fleet, "--dcs", "3"}, 2, nil, "exclude each other"},
		{"missing-fleet", []string{"simulate", "--fleet", filepath.Join(dir, "nope.json")}, 1, nil, "nope.json"},
		{"too-small", []string{"simulate", "--dcs", "2"}, 1, nil, "at least"},
		{"positional", []string{"simulate", "extra"}, 2, nil, "usage: krollctl simulate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := krollctl(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.code, stderr)
			}
			for _, want := range tt.inStdout {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
			if !strings.Contains(stderr, tt.inStderr) {
				t.Errorf("stderr %q lacks %q", stderr, tt.inStderr)
			}
		})
	}
	data, err := os.ReadFile(plot)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "<svg") || strings.Count(string(data), "<polyline") != 4 {
		t.Errorf("plot: want an SVG with 4 polylines (3 regions, 1 kernel chart), got %d bytes", len(data))
	}
	_, stdout, _ := krollctl(t, "simulate", "--fleet", fleet, "--output", "json")
	var m map[string]any
	if err := json.Unmarshal([]byte(stdout), &m); err != nil {
		t.Fatalf("json output: %v", err)
	}
}

// TestSimulateTrain runs krollctl simulate --weeks on a small built-in
// fleet: the table, stable JSON keys, the plot, and flag validation.
func TestSimulateTrain(t *testing.T) {
	dir := t.TempDir()
	plot := filepath.Join(dir, "train.svg")
	small := []string{"simulate", "--dcs", "30", "--hosts", "2000", "--weeks", "6"}
	tests := []struct {
		name     string
		args     []string
		code     int
		inStdout []string
		inStderr string
	}{
		{"table", append(slices.Clone(small), "--build-every", "7d", "--fail-build", "2", "--cve-day", "3", "--mitigate-after", "6h", "--plot", plot), 0,
			[]string{"DAYS BEHIND", "edge", "control", "staging", "rejected", "exposure_host_days_mitigated", "depart", "capacity_floor_violations  0"}, ""},
		{"json", append(slices.Clone(small), "-o", "json", "--build-every", "3.5d", "--cve-day", "1"), 0,
			[]string{`"days_behind_max"`, `"days_behind_mean"`, `"days_behind_end"`, `"p50"`, `"p90"`, `"builds"`, `"steps"`, `"exposure_host_days"`, `"exposure_host_days_mitigated"`, `"fix_build": 2`}, ""},
		{"train flag without weeks", []string{"simulate", "--fail-build", "2"}, 2, nil, "add --weeks"},
		{"rollout flag with weeks", append(slices.Clone(small), "--expedite"), 2, nil, "not of --weeks"},
		{"fail-pct with weeks", append(slices.Clone(small), "--fail-pct", "1"), 2, nil, "not of --weeks"},
		{"zero weeks", []string{"simulate", "--weeks", "0"}, 2, nil, "weeks 0"},
		{"bad build-every", append(slices.Clone(small), "--build-every", "weekly"), 2, nil, "7d"},
		{"build-every too short", append(slices.Clone(small), "--build-every", "10m"), 2, nil, "build interval"},
		{"fail-build beyond", append(slices.Clone(small), "--fail-build", "9"), 2, nil, "failing build 9"},
		{"cve after the run", append(slices.Clone(small), "--cve-day", "42"), 2, nil, "CVE day 42"},
		{"mitigate without cve", append(slices.Clone(small), "--mitigate-after", "1h"), 2, nil, "needs --cve-day"},
		{"bad departure", append(slices.Clone(small), "--departure", "Funday 09:00 UTC"), 2, nil, "weekday"},
		{"edge cycle not whole weeks", append(slices.Clone(small), "--edge-cycle", "10d"), 2, nil, "whole weeks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := krollctl(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.code, stderr)
			}
			for _, want := range tt.inStdout {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
			if !strings.Contains(stderr, tt.inStderr) {
				t.Errorf("stderr %q lacks %q", stderr, tt.inStderr)
			}
		})
	}
	data, err := os.ReadFile(plot)
	if err != nil {
		t.Fatal(err)
	}
	// Builds 0 … 2 and 4 … (build 3 is not on any host in 6 weeks or is)
	// each draw a line; the exposure chart two more.
	if !strings.HasPrefix(string(data), "<svg") || strings.Count(string(data), "<polyline") < 4 || !strings.Contains(string(data), "mitigated at +6h") {
		t.Errorf("plot: want an SVG with build lines and the exposure curves, got %d bytes, %d polylines", len(data), strings.Count(string(data), "<polyline"))
	}
	_, stdout, _ := krollctl(t, append(slices.Clone(small), "-o", "json")...)
	var m map[string]any
	if err := json.Unmarshal([]byte(stdout), &m); err != nil {
		t.Fatalf("json output: %v", err)
	}
	if _, ok := m["cve"]; ok {
		t.Errorf("json has a cve report without --cve-day")
	}
}
