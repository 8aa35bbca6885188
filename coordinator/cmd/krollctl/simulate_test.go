package main

import (
	"encoding/json"
	"os"
	"path/filepath"
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
