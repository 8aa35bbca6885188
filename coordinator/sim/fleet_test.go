package sim

import (
	"testing"

	"github.com/kroll-dev/kroll/coordinator/schedule"
)

// TestAdmissibleFloor: the default floor, lowered just enough in small
// datacenters that one slot's worth of hosts can still reboot.
func TestAdmissibleFloor(t *testing.T) {
	for _, tc := range []struct {
		hosts, slotPct, pct, want int
	}{
		{100, 5, 90, 90},
		{20, 5, 90, 90},
		{19, 5, 90, 90},
		{9, 5, 90, 88},
		{3, 10, 90, 66},
		{1, 5, 90, 0},
		{40, 10, 95, 90},
	} {
		got := admissibleFloor(tc.hosts, tc.slotPct, tc.pct)
		if got != tc.want {
			t.Errorf("admissibleFloor(%d, %d, %d) = %d, want %d", tc.hosts, tc.slotPct, tc.pct, got, tc.want)
		}
		p := schedule.Policy{SlotPct: tc.slotPct, MinHealthyPct: got}
		if p.Floor(tc.hosts) > tc.hosts-p.Limit(tc.hosts) {
			t.Errorf("%d hosts at %d%%: floor %d leaves no room for %d slots", tc.hosts, got, p.Floor(tc.hosts), p.Limit(tc.hosts))
		}
	}
}
