package schedule

import (
	"errors"
	"testing"
)

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		name string
		p    Policy
		want string // "" = valid
	}{
		{"absolute limit", Policy{SlotLimit: 3, MinHealthyPct: 90}, ""},
		{"percent limit", Policy{SlotPct: 10, MinHealthyPct: 90, FailureBudget: 3, Failures: 2}, ""},
		{"bounds", Policy{SlotPct: 100, MinHealthyPct: 100}, ""},
		{"zero floor", Policy{SlotPct: 1}, ""},
		{"budget exhausted is still valid", Policy{SlotLimit: 1, FailureBudget: 3, Failures: 7}, ""},
		{"neither limit", Policy{}, "invalid policy: SlotLimit and SlotPct: exactly one must be set (> 0), got neither"},
		{"both limits", Policy{SlotLimit: 2, SlotPct: 10},
			"invalid policy: SlotLimit and SlotPct: exactly one must be set, got SlotLimit 2 and SlotPct 10"},
		{"negative limit", Policy{SlotLimit: -1, SlotPct: 10}, "invalid policy: SlotLimit: must be ≥ 0, got -1"},
		{"pct over 100", Policy{SlotPct: 101}, "invalid policy: SlotPct: must be within 0..100, got 101"},
		{"negative pct", Policy{SlotLimit: 1, SlotPct: -5}, "invalid policy: SlotPct: must be within 0..100, got -5"},
		{"floor over 100", Policy{SlotLimit: 1, MinHealthyPct: 101},
			"invalid policy: MinHealthyPct: must be within 0..100, got 101"},
		{"negative floor", Policy{SlotLimit: 1, MinHealthyPct: -1},
			"invalid policy: MinHealthyPct: must be within 0..100, got -1"},
		{"negative budget", Policy{SlotLimit: 1, FailureBudget: -1},
			"invalid policy: FailureBudget: must be ≥ 0 (0 = unlimited), got -1"},
		{"negative failures", Policy{SlotLimit: 1, Failures: -1}, "invalid policy: Failures: must be ≥ 0, got -1"},
		{"all problems listed", Policy{SlotLimit: -1, SlotPct: 200, MinHealthyPct: 300, FailureBudget: -2},
			"invalid policy: SlotLimit: must be ≥ 0, got -1; SlotPct: must be within 0..100, got 200; " +
				"MinHealthyPct: must be within 0..100, got 300; FailureBudget: must be ≥ 0 (0 = unlimited), got -2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var pe *PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("Validate() = %v (%T), want a *PolicyError", err, err)
			}
			if err.Error() != tt.want {
				t.Fatalf("Validate() = %q\nwant          %q", err, tt.want)
			}
		})
	}
}

func TestPolicyLimit(t *testing.T) {
	tests := []struct {
		name       string
		p          Policy
		registered int
		want       int
	}{
		{"absolute", Policy{SlotLimit: 3}, 20, 3},
		{"absolute above host count", Policy{SlotLimit: 5}, 2, 5},
		{"absolute, no hosts", Policy{SlotLimit: 3}, 0, 3},
		{"1 host 10% rounds up to 1", Policy{SlotPct: 10}, 1, 1},
		{"9 hosts 10% at least 1", Policy{SlotPct: 10}, 9, 1},
		{"10 hosts 10%", Policy{SlotPct: 10}, 10, 1},
		{"19 hosts 10% rounds down", Policy{SlotPct: 10}, 19, 1},
		{"20 hosts 10%", Policy{SlotPct: 10}, 20, 2},
		{"25 hosts 10% rounds down", Policy{SlotPct: 10}, 25, 2},
		{"25 hosts 100%", Policy{SlotPct: 100}, 25, 25},
		{"3 hosts 50%", Policy{SlotPct: 50}, 3, 1},
		{"1000 hosts 1%", Policy{SlotPct: 1}, 1000, 10},
		{"no hosts", Policy{SlotPct: 10}, 0, 0},
		{"invalid: neither", Policy{}, 10, 0},
		{"invalid: negative limit", Policy{SlotLimit: -1, SlotPct: 50}, 10, 0},
		{"invalid: pct over 100", Policy{SlotPct: 150}, 10, 0},
		{"invalid: both, SlotLimit wins", Policy{SlotLimit: 2, SlotPct: 50}, 10, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Limit(tt.registered); got != tt.want {
				t.Fatalf("Limit(%d) = %d, want %d", tt.registered, got, tt.want)
			}
		})
	}
}

func TestPolicyFloor(t *testing.T) {
	tests := []struct {
		pct, registered, want int
	}{
		{90, 10, 9},
		{90, 20, 18},
		{90, 11, 10}, // 9.9 rounds up
		{90, 1, 1},
		{50, 3, 2}, // 1.5 rounds up
		{50, 4, 2},
		{1, 1, 1},
		{1, 100, 1},
		{1, 101, 2},
		{0, 10, 0},
		{100, 10, 10},
		{90, 0, 0},
		{101, 10, 11}, // invalid: fails closed
		{-1, 10, 11},  // invalid: fails closed
	}
	for _, tt := range tests {
		p := Policy{SlotLimit: 1, MinHealthyPct: tt.pct}
		if got := p.Floor(tt.registered); got != tt.want {
			t.Errorf("MinHealthyPct %d: Floor(%d) = %d, want %d", tt.pct, tt.registered, got, tt.want)
		}
	}
}
