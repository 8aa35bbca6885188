package capacity

import (
	"testing"

	"github.com/kroll-dev/kroll/pkg/wire"
)

func TestOutOfService(t *testing.T) {
	for _, tc := range []struct {
		phase string
		out   bool
	}{
		{wire.PhaseIdle, false},
		{wire.PhaseStaging, false},
		{wire.PhaseStaged, false},
		{wire.PhaseWaitingSlot, false},
		{wire.PhaseStagingFailed, false},
		{wire.PhaseInstalling, false},
		{wire.PhaseInstallFailed, false},
		{wire.PhaseHealthy, false},
		{"", false},
		{wire.PhaseDraining, true},
		{wire.PhaseRebooting, true},
		{wire.PhaseVerifying, true},
		{wire.PhaseDrainTimeout, true},
		{wire.PhaseWrongKernel, true},
		{wire.PhaseUnhealthy, true},
		{wire.PhaseRollback, true},
		{wire.PhaseFailed, true},
	} {
		if got := OutOfService(tc.phase); got != tc.out {
			t.Errorf("OutOfService(%q) = %v, want %v", tc.phase, got, tc.out)
		}
	}
}

func TestSlotLimit(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		registered, limit, pct int
		want                   int
	}{
		{"absolute", 10, 3, 0, 3},
		{"absolute above hosts", 2, 5, 0, 5},
		{"absolute without hosts", 0, 2, 0, 2},
		{"percent rounds down", 25, 0, 10, 2},
		{"percent at least one", 1, 0, 10, 1},
		{"percent of none", 0, 0, 10, 0},
		{"100 percent", 7, 0, 100, 7},
		{"neither", 10, 0, 0, 0},
		{"negative limit", 10, -1, 10, 0},
		{"percent over 100", 10, 0, 101, 0},
		{"negative percent", 10, 0, -5, 0},
	} {
		if got := SlotLimit(tc.registered, tc.limit, tc.pct); got != tc.want {
			t.Errorf("%s: SlotLimit(%d, %d, %d) = %d, want %d", tc.name, tc.registered, tc.limit, tc.pct, got, tc.want)
		}
	}
}

func TestFloor(t *testing.T) {
	for _, tc := range []struct {
		registered, pct, want int
	}{
		{10, 90, 9}, {20, 90, 18}, {9, 90, 9}, {9, 88, 8}, {1, 50, 1}, {3, 0, 0}, {3, 100, 3},
		{0, 90, 0}, {-1, 90, 0},
		{10, 101, 11}, {10, -1, 11},
	} {
		if got := Floor(tc.registered, tc.pct); got != tc.want {
			t.Errorf("Floor(%d, %d) = %d, want %d", tc.registered, tc.pct, got, tc.want)
		}
	}
}

func TestAdmissiblePct(t *testing.T) {
	for _, tc := range []struct {
		registered, out, want int
	}{
		{9, 1, 88}, {10, 1, 90}, {100, 5, 95}, {3, 1, 66}, {1, 1, 0}, {2, 5, 0}, {0, 0, 0}, {10, 0, 100}, {10, -2, 100},
	} {
		if got := AdmissiblePct(tc.registered, tc.out); got != tc.want {
			t.Errorf("AdmissiblePct(%d, %d) = %d, want %d", tc.registered, tc.out, got, tc.want)
		}
	}
	// The largest percentage that leaves room for out hosts: its floor
	// does, one more percent does not.
	for r := 1; r <= 300; r++ {
		for out := 0; out < r; out++ {
			p := AdmissiblePct(r, out)
			if Floor(r, p) > r-out {
				t.Fatalf("Floor(%d, AdmissiblePct = %d) = %d > %d hosts serving", r, p, Floor(r, p), r-out)
			}
			if p < 100 && Floor(r, p+1) <= r-out {
				t.Fatalf("AdmissiblePct(%d, %d) = %d is not the largest: %d%% also leaves room", r, out, p, p+1)
			}
		}
	}
}

func TestMayTakeOut(t *testing.T) {
	for _, tc := range []struct {
		name string
		load Load
		want Reason
	}{
		{"room", Load{Out: 1, Limit: 2, ServingAfter: 8, Floor: 8}, Allowed},
		{"at the limit", Load{Out: 2, Limit: 2, ServingAfter: 8, Floor: 8}, AtSlotLimit},
		{"over the limit", Load{Out: 3, Limit: 2, ServingAfter: 8, Floor: 8}, AtSlotLimit},
		{"limit checked first", Load{Out: 2, Limit: 2, ServingAfter: 1, Floor: 8}, AtSlotLimit},
		{"below the floor", Load{Out: 0, Limit: 2, ServingAfter: 7, Floor: 8}, BelowFloor},
		{"zero limit", Load{Limit: 0, ServingAfter: 10}, AtSlotLimit},
		{"invalid floor", Load{Limit: 1, ServingAfter: 10, Floor: Floor(10, 101)}, BelowFloor},
		{"no floor", Load{Limit: 1}, Allowed},
	} {
		if got := MayTakeOut(tc.load); got != tc.want {
			t.Errorf("%s: MayTakeOut(%+v) = %q, want %q", tc.name, tc.load, got, tc.want)
		}
	}
}
