package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kroll-dev/kroll/pkg/gossip"
	"github.com/kroll-dev/kroll/pkg/wire"
)

func view(members ...gossip.Member) gossip.View {
	return gossip.View{Members: members}
}

func member(name, state, phase string) gossip.Member {
	return gossip.Member{Name: name, State: state, Meta: gossip.Meta{HostID: name, Phase: phase}}
}

func TestGuard(t *testing.T) {
	alive := func(n int) []gossip.Member {
		var out []gossip.Member
		for i := range n {
			out = append(out, member(string(rune('a'+i)), gossip.StateAlive, wire.PhaseIdle))
		}
		return out
	}
	self := member("me", gossip.StateAlive, wire.PhaseDraining)
	for _, tc := range []struct {
		name    string
		members []gossip.Member
		limits  *wire.DatacenterLimits
		want    string // "" = allowed
	}{
		{"no limits", alive(3), nil, ""},
		{"room", append(alive(9), self), &wire.DatacenterLimits{EffectiveLimit: 2, MinHealthyPct: 80, Hosts: 10}, ""},
		{"another rebooting at limit 1", append(append(alive(8), member("r", gossip.StateAlive, wire.PhaseRebooting)), self),
			&wire.DatacenterLimits{EffectiveLimit: 1, MinHealthyPct: 50, Hosts: 10}, "1 other hosts out of service"},
		{"dead and suspect count", append(append(alive(7), member("d", gossip.StateDead, wire.PhaseIdle), member("s", gossip.StateSuspect, wire.PhaseIdle)), self),
			&wire.DatacenterLimits{EffectiveLimit: 2, MinHealthyPct: 50, Hosts: 10}, "2 other hosts out of service"},
		{"failed host counts", append(append(alive(8), member("f", gossip.StateAlive, wire.PhaseFailed)), self),
			&wire.DatacenterLimits{EffectiveLimit: 1, MinHealthyPct: 50, Hosts: 10}, "out of service"},
		{"floor ok", append(alive(7), self), &wire.DatacenterLimits{EffectiveLimit: 5, MinHealthyPct: 80, Hosts: 8}, ""},
		{"floor", append(alive(7), self), &wire.DatacenterLimits{EffectiveLimit: 5, MinHealthyPct: 90, Hosts: 8}, "below the floor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := guard(view(tc.members...), "me", tc.limits)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestDCView(t *testing.T) {
	v := view(member("a", gossip.StateAlive, wire.PhaseIdle), member("b", gossip.StateAlive, wire.PhaseDraining),
		member("c", gossip.StateAlive, wire.PhaseRebooting), member("d", gossip.StateDead, wire.PhaseIdle),
		member("e", gossip.StateLeft, ""), member("f", gossip.StateAlive, wire.PhaseWaitingSlot))
	v.Suspect, v.Dead, v.Left = 0, 1, 1
	got := dcView(v)
	if *got != (wire.DCView{Alive: 2, Draining: 1, Rebooting: 1, Dead: 2}) {
		t.Fatalf("dcView = %+v", *got)
	}
}

func TestReadKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		return p
	}
	good := write("k1", base64.StdEncoding.EncodeToString(make([]byte, 32))+"\n")
	short := write("k2", base64.StdEncoding.EncodeToString(make([]byte, 20)))
	junk := write("k3", "not base64!")
	if ks, err := readKeys([]string{good}); err != nil || len(ks) != 1 || len(ks[0]) != 32 {
		t.Fatalf("good key: %v %v", ks, err)
	}
	for _, p := range []string{short, junk, filepath.Join(dir, "missing")} {
		if _, err := readKeys([]string{p}); err == nil {
			t.Errorf("%s accepted", p)
		}
	}
}
