package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/api"
	"github.com/kroll-dev/kroll/coordinator/fsm"
)

// TestHostsConfig: [hosts] and [fleetlock] reach the timing the leader
// puts into its commands; the example file documents the defaults.
func TestHostsConfig(t *testing.T) {
	tests := []struct {
		name    string
		toml    string
		want    fsm.Timing // only the host fields are compared
		wantErr string
	}{
		{"defaults", "", fsm.Timing{FleetLockFresh: 15 * time.Minute, ExpireAfter: 7 * 24 * time.Hour, MaxHostsPerDC: 10000}, ""},
		{"set", "[hosts]\nexpire_after = \"48h\"\nmax_per_dc = 500\n[fleetlock]\nfresh_within = \"30m\"\n",
			fsm.Timing{FleetLockFresh: 30 * time.Minute, ExpireAfter: 48 * time.Hour, MaxHostsPerDC: 500}, ""},
		{"negative cap", "[hosts]\nmax_per_dc = -1\n", fsm.Timing{}, "max_per_dc"},
		{"zero expiry", "[hosts]\nexpire_after = \"0s\"\n", fsm.Timing{}, "positive"},
		{"unknown key", "[hosts]\nmax_per_datacenter = 5\n", fsm.Timing{}, "max_per_datacenter"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.toml")
			if err := os.WriteFile(path, []byte(tc.toml), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := loadConfig(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := fsm.Timing{FleetLockFresh: s.timing.FleetLockFresh, ExpireAfter: s.timing.ExpireAfter, MaxHostsPerDC: s.timing.MaxHostsPerDC}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	// The example documents every key with its default.
	ex, err := loadConfig("../../../docs/examples/coordinator.toml")
	if err != nil {
		t.Fatal(err)
	}
	def, _ := loadConfig("")
	if ex.timing != def.timing {
		t.Fatalf("example timing %+v, defaults %+v", ex.timing, def.timing)
	}
}

// TestAPIConfig: [api] reaches the server's admission; the example file
// documents the defaults.
func TestAPIConfig(t *testing.T) {
	tests := []struct {
		name    string
		toml    string
		want    api.Admission
		wantErr string
	}{
		{"defaults", "", api.Admission{}, ""},
		{"set", "[api]\nheartbeat_concurrency = 16\nheartbeat_queue = -1\nheartbeat_queue_wait = \"50ms\"\npriority_concurrency = 32\npriority_queue = 8\npriority_queue_wait = \"2s\"\nretry_after = \"20s\"\nsched_latency_target = \"5ms\"\n",
			api.Admission{HeartbeatConcurrency: 16, HeartbeatQueue: -1, HeartbeatQueueWait: 50 * time.Millisecond,
				PriorityConcurrency: 32, PriorityQueue: 8, PriorityQueueWait: 2 * time.Second, RetryAfter: 20 * time.Second, PressureTarget: 5 * time.Millisecond}, ""},
		{"pressure shedding off", "[api]\nshed_on_pressure = false\n", api.Admission{PressureTarget: -1}, ""},
		{"Retry-After too long for alive_within", "[api]\nretry_after = \"30s\"\n", api.Admission{}, "slots.alive_within (45s) must be longer than 1.5 × api.retry_after (30s"},
		{"heartbeat interval too long for alive_within", "[slots]\nheartbeat_interval = \"20s\"\n", api.Admission{}, "must be longer than"},
		{"negative concurrency", "[api]\nheartbeat_concurrency = -4\n", api.Admission{}, "api.heartbeat_concurrency"},
		{"queue below -1", "[api]\npriority_queue = -2\n", api.Admission{}, "api.heartbeat_queue and api.priority_queue"},
		{"sub-second Retry-After", "[api]\nretry_after = \"500ms\"\n", api.Admission{}, "api.retry_after"},
		{"unknown key", "[api]\nmax_heartbeats = 5\n", api.Admission{}, "max_heartbeats"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.toml")
			if err := os.WriteFile(path, []byte(tc.toml), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := loadConfig(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.admission != tc.want {
				t.Fatalf("got %+v, want %+v", s.admission, tc.want)
			}
		})
	}
	ex, err := loadConfig("../../../docs/examples/coordinator.toml")
	if err != nil {
		t.Fatal(err)
	}
	def, _ := loadConfig("")
	if got, want := ex.admission.WithDefaults(ex.heartbeatInterval), def.admission.WithDefaults(def.heartbeatInterval); got != want {
		t.Fatalf("example admission %+v, defaults %+v", got, want)
	}
}

// TestFleetLockConfig: [fleetlock] allow_unauthenticated_from and groups
// reach the server; a bad entry stops the start with one error naming it.
func TestFleetLockConfig(t *testing.T) {
	tests := []struct {
		name, toml string
		nets       []string
		groups     []string
		wantErr    string
	}{
		{name: "default: closed", toml: ""},
		{name: "networks", toml: "[fleetlock]\nallow_unauthenticated_from = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n", nets: []string{"10.0.0.0/8", "2001:db8::/32"}},
		{name: "networks and groups", toml: "[fleetlock]\nallow_unauthenticated_from = [\"10.0.0.0/8\"]\ngroups = [\"fra\", \"ams\"]\n",
			nets: []string{"10.0.0.0/8"}, groups: []string{"fra", "ams"}},
		{name: "bad CIDR", toml: "[fleetlock]\nallow_unauthenticated_from = [\"10.0.0.0/8\", \"10.0.0.300/24\"]\n",
			wantErr: "fleetlock: allow_unauthenticated_from[1]"},
		{name: "host bits", toml: "[fleetlock]\nallow_unauthenticated_from = [\"192.168.1.7/24\"]\n", wantErr: "the network is 192.168.1.0/24"},
		{name: "not a list", toml: "[fleetlock]\nallow_unauthenticated_from = \"10.0.0.0/8\"\n", wantErr: "allow_unauthenticated_from"},
		{name: "groups alone", toml: "[fleetlock]\ngroups = [\"fra\"]\n", wantErr: "fleetlock: groups limits"},
		{name: "misspelt key", toml: "[fleetlock]\nallow_unauthenticated = [\"10.0.0.0/8\"]\n", wantErr: "allow_unauthenticated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.toml")
			if err := os.WriteFile(path, []byte(tc.toml), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := loadConfig(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var nets []string
			for _, p := range s.fleetLock.AllowUnauthenticatedFrom {
				nets = append(nets, p.String())
			}
			if !slices.Equal(nets, tc.nets) || !slices.Equal(s.fleetLock.Groups, tc.groups) {
				t.Fatalf("got %v %v, want %v %v", nets, s.fleetLock.Groups, tc.nets, tc.groups)
			}
		})
	}
	ex, err := loadConfig("../../../docs/examples/coordinator.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(ex.fleetLock.AllowUnauthenticatedFrom) != 0 || len(ex.fleetLock.Groups) != 0 {
		t.Fatalf("the example opens FleetLock: %+v", ex.fleetLock)
	}
}
