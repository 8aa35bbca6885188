package wire

import (
	"encoding/json"
	"testing"
)

func TestPolicyState(t *testing.T) {
	for _, tc := range []struct {
		s       PolicyState
		valid   bool
		inForce bool
	}{
		{PolicyEnforcing, true, true},
		{PolicyAuditing, true, true},
		{PolicyRetired, true, false},
		{PolicyUnavailable, true, false},
		{PolicyRejected, true, false},
		{"expired", false, false},
		{"unavailable: no bpf", false, false},
		{"", false, false},
	} {
		if got := tc.s.Valid(); got != tc.valid {
			t.Errorf("%q.Valid() = %v, want %v", tc.s, got, tc.valid)
		}
		if got := tc.s.InForce(); got != tc.inForce {
			t.Errorf("%q.InForce() = %v, want %v", tc.s, got, tc.inForce)
		}
	}
	// The JSON form is the plain string agents always sent.
	b, err := json.Marshal(PolicyStatus{ID: "p", Version: 3, State: PolicyRetired})
	if err != nil || string(b) != `{"id":"p","version":3,"state":"retired"}` {
		t.Fatalf("json = %s, %v", b, err)
	}
}
