package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kroll-dev/kroll/agent/install"
	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/capacity"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// fakeInstaller installs a staged kernel into the fake host's /boot; the
// staged image itself is made unbootable, so a boot proves the installed
// paths were used. The real installer is tested in agent/install.
type fakeInstaller struct {
	h  *fakeHost
	mu sync.Mutex
	// fail makes this many Install calls fail like dpkg; changed makes
	// them report a changed staged file instead.
	fail    int
	changed bool
	calls   int
	keeps   []install.Keep
	// during is called with each failure (to look at the host then).
	during func()
}

func (f *fakeInstaller) Install(_ context.Context, req install.Request) (*install.Result, error) {
	f.mu.Lock()
	f.calls++
	n := f.calls
	f.mu.Unlock()
	rel := req.Manifest.KernelVersion
	if n <= f.fail {
		if f.during != nil {
			f.during()
		}
		if f.changed {
			return nil, fmt.Errorf("install %s: artifact k.deb: %w", req.Manifest.ID, install.ErrStagedChanged)
		}
		return nil, fmt.Errorf("install %s: dpkg --install k.deb: exit status 1: dpkg: error processing package linux-image-%s (--install): dependency problems", req.Manifest.ID, rel)
	}
	f.h.mu.Lock()
	delete(f.h.kernels, req.Vmlinuz)
	f.h.mu.Unlock()
	f.h.install(rel, newUpstream)
	return &install.Result{KernelRelease: rel, Vmlinuz: filepath.Join(f.h.boot, "vmlinuz-"+rel),
		Initrd: filepath.Join(f.h.boot, "initrd.img-"+rel), Method: "dpkg"}, nil
}

func (f *fakeInstaller) Cleanup(_ context.Context, keep install.Keep) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keeps = append(f.keeps, keep)
	return nil, errors.New("cleanup: something could not be removed")
}

// TestInstallStep: the install runs between staged and waiting-slot, the
// boot uses the installed kernel and initrd, and old kernels are cleaned
// up keeping the running and the target kernel (a cleanup error is only
// a warning).
func TestInstallStep(t *testing.T) {
	r := newRig(t)
	fi := &fakeInstaller{h: r.host}
	r.installer = fi
	r.drive(0, wire.PhaseIdle)
	r.checkUpgraded(t)
	if fi.calls != 1 {
		t.Errorf("%d installs, want 1", fi.calls)
	}
	if len(fi.keeps) != 1 || fi.keeps[0] != (install.Keep{Running: oldKernel, Target: newKernel}) {
		t.Errorf("cleanup keeps %+v", fi.keeps)
	}
}

// TestInstallFailureKeepsServing: a failing install is install-failed with
// dpkg's message, retried with backoff, never asks for a slot and leaves
// the routes announced; then the upgrade completes.
func TestInstallFailureKeepsServing(t *testing.T) {
	for _, tc := range []struct {
		name      string
		changed   bool
		wantPhase string
		wantErr   string
		// wantStages is the number of staging calls (the installing step
		// finds the staged files through the stager too; a changed file is
		// staged again).
		wantStages int
	}{
		{name: "dpkg fails", wantPhase: wire.PhaseInstallFailed, wantErr: "dependency problems", wantStages: 5},
		{name: "staged file changed", changed: true, wantPhase: wire.PhaseStaging, wantErr: install.ErrStagedChanged.Error(), wantStages: 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			var seen []string
			fi := &fakeInstaller{h: r.host, fail: 3, changed: tc.changed}
			fi.during = func() {
				if rs := r.host.routeSet(); len(rs) != 2 || r.coord.grants() != 0 {
					t.Errorf("during a failed install: routes %v, grants %d", rs, r.coord.grants())
				}
			}
			r.installer = fi
			a := r.agent(0)
			ctx := context.Background()
			for steps := 0; steps < 100 && a.Phase() != wire.PhaseWaitingSlot; steps++ {
				if _, err := a.Heartbeat(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := a.Step(ctx); err != nil {
					t.Fatal(err)
				}
				if j := a.Journal(); j.Error != "" && j.Phase == tc.wantPhase {
					if !strings.Contains(j.Error, tc.wantErr) {
						t.Fatalf("journal error %q, want %q", j.Error, tc.wantErr)
					}
					seen = append(seen, j.Phase)
				}
			}
			if len(seen) != 3 {
				t.Fatalf("saw %d failures in phase %s, want 3", len(seen), tc.wantPhase)
			}
			if fi.calls < 3 {
				t.Fatalf("%d install attempts, want the 3 failures", fi.calls)
			}
			if got := testutil.ToFloat64(a.cfg.Metrics.InstallFailures); got != 3 {
				t.Errorf("install failures metric %v, want 3", got)
			}
			if got := a.backoff(3); got != 4*a.cfg.RetryInterval {
				t.Errorf("backoff after 3 failures %s", got)
			}
			r.drive(0, wire.PhaseIdle)
			r.checkUpgraded(t)
			if r.stager.calls != tc.wantStages {
				t.Errorf("%d staging calls, want %d", r.stager.calls, tc.wantStages)
			}
		})
	}
}

// TestInstallFailedHeartbeatPhase: the coordinator records install-failed
// as the host's phase, and counts the host as in service.
func TestInstallFailedHeartbeatPhase(t *testing.T) {
	r := newRig(t)
	r.installer = &fakeInstaller{h: r.host, fail: 100}
	a := r.agent(0)
	ctx := context.Background()
	for range 10 {
		if _, err := a.Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	phase := a.Phase()
	if !slices.Contains([]string{wire.PhaseInstalling, wire.PhaseInstallFailed}, phase) {
		t.Fatalf("phase %s", phase)
	}
	var got string
	r.coord.view(func(s *fsm.State) { got = s.Hosts["h1"].Phase })
	if got != phase {
		t.Errorf("coordinator has phase %q, agent %q", got, phase)
	}
	if capacity.OutOfService(got) {
		t.Errorf("%s counts as out of service", got)
	}
	if rs := r.host.routeSet(); len(rs) != 2 || r.coord.grants() != 0 {
		t.Errorf("routes %v, grants %d", rs, r.coord.grants())
	}
}

// TestCrashAfterEveryJournalWriteWithInstall kills the agent after each
// journal write of an upgrade with the install step and checks it still
// ends healthy on the installed kernel with one boot and one slot.
func TestCrashAfterEveryJournalWriteWithInstall(t *testing.T) {
	clean := newRig(t)
	clean.installer = &fakeInstaller{h: clean.host}
	clean.drive(0, wire.PhaseIdle)
	total := clean.writes
	for n := 1; n <= total; n++ {
		r := newRig(t)
		r.installer = &fakeInstaller{h: r.host}
		r.drive(n, wire.PhaseIdle)
		t.Run("", func(t *testing.T) {
			r.checkUpgraded(t)
			if t.Failed() {
				t.Logf("crash after journal write %d of %d", n, total)
			}
		})
	}
}
