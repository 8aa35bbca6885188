package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/internal/aptrepo"
	"github.com/kroll-dev/kroll/pkg/release"
)

// The demo's release train (--sim): line 6.1, a staging and a control
// datacenter of simulated hosts, the edge is fra1 and ams1.
const (
	trainLine   = "6.1"
	stagingDC   = "stg1"
	controlDC   = "ctl1"
	trainPerDC  = 3
	trainBuild  = "6.1.195-kroll1"
	trainKernel = "6.1.0-57-amd64"
	demoCVE     = "CVE-2026-31431"
)

// startRepo creates the weekly-build apt repository (empty until the
// train section publishes a build), serves it on loopback and returns
// the coordinators' [[feed]] configuration for it.
func (d *demo) startRepo() (string, error) {
	var err error
	if d.repo, err = aptrepo.New(filepath.Join(d.dir, "repo")); err != nil {
		return "", err
	}
	// An empty index: the feed polls it from the start.
	if err := d.repo.Index(context.Background(), false); err != nil {
		return "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(d.repo.Dir)), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	d.repoURL = "http://" + ln.Addr().String() + "/"
	return fmt.Sprintf(`[[feed]]
name = "weekly"
kind = "apt"
url = %q
suite = %q
component = %q
arch = %q
package = "linux-image-%s.*-amd64"
line = %q
interval = "2s"
`, d.repoURL, aptrepo.Suite, aptrepo.Component, aptrepo.Arch, trainLine, trainLine), nil
}

// train is the demo's train section: a staging and a control datacenter
// join (hosts on the old kernel, covered by the Copy Fail mitigation), a
// build fixing the CVE is published to the apt repository — nobody runs
// `release add` — and the train takes it through staging (soak) and
// control at once; the edge's next departure is days away, so the demo
// expedites it and stops once the canary datacenter runs it (the other
// edge waves wait for its soak). edge is the release the edge runs;
// hosts counts the edge hosts.
func (d *demo) train(ctx context.Context, edge release.Manifest, hosts int) error {
	d.step("the release train of line %s: staging %s, control %s, the edge %s and %s", trainLine, stagingDC, controlDC, demoDCs[0], demoDCs[1])
	for _, dc := range []struct{ name, tier string }{{stagingDC, fsm.TierStaging}, {controlDC, fsm.TierControl}} {
		if err := d.krollctl(ctx, "dc", "set", dc.name, "--create", "--tier", dc.tier, "--slots", fmt.Sprint(trainPerDC), "--min-healthy-pct", "0"); err != nil {
			return err
		}
		for i := range trainPerDC {
			if err := d.addSimHost(ctx, fmt.Sprintf("%s-sim%03d", dc.name, i+1), dc.name, "6.1.0-47-amd64", "6.1.170"); err != nil {
				return err
			}
		}
	}
	all := hosts + 2*trainPerDC
	if err := d.waitHosts(ctx, all); err != nil {
		return err
	}
	if err := d.waitFor(ctx, 2*time.Minute, "the new hosts covered by the mitigation", func() (bool, error) {
		r, err := d.ctl.CVE(ctx, demoCVE)
		if err != nil {
			return false, err
		}
		if r.Patched+r.Mitigated != all {
			return false, fmt.Errorf("%d patched, %d mitigated, %d auditing, %d exposed of %d hosts", r.Patched, r.Mitigated, r.Auditing, r.Exposed, all)
		}
		return true, nil
	}); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "%d new hosts in %s and %s run the old kernel: the Copy Fail mitigation covers them\n", 2*trainPerDC, stagingDC, controlDC)
	if err := d.krollctl(ctx, "cve", "show", demoCVE); err != nil {
		return err
	}
	// The edge cycle is whole weeks and the next departure days away: the
	// edge step is expedited below. The soaks are the shortest the
	// coordinator accepts.
	dep := time.Now().UTC().Add(72 * time.Hour)
	departure := fmt.Sprintf("%s 09:00 UTC", dep.Weekday().String()[:3])
	if err := d.krollctl(ctx, "train", "set", trainLine, "--staging", stagingDC, "--staging-soak", "1m", "--control-soak", "1m",
		"--edge-cycle", "168h", "--departure", departure); err != nil {
		return err
	}
	// The control tier takes the newest validated release at once: the
	// one the edge runs.
	if err := d.waitKernel(ctx, controlDC, edge.KernelVersion); err != nil {
		return err
	}

	d.step("the weekly build %s is published to the apt repository (dpkg-deb, dpkg-scanpackages, a signed manifest next to the .deb)", trainBuild)
	deb, err := d.repo.BuildDeb(ctx, "linux-image-"+trainKernel, "6.1.195-1")
	if err != nil {
		return err
	}
	m := release.Manifest{ID: trainBuild, Line: trainLine, KernelVersion: trainKernel, UpstreamVersion: "6.1.195", Kind: release.KindDeb,
		Artifacts: []release.Artifact{deb.Artifact(d.repoURL)}, Created: time.Now().UTC().Truncate(time.Second),
		Fixes: []string{demoCVE}, Notes: "kroll demo: the weekly build"}
	if err := d.repo.Publish(deb, m, d.relKey); err != nil {
		return err
	}
	if err := d.repo.Index(ctx, false); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "published %s%s and its manifest\n", d.repoURL, deb.Filename)
	if err := d.waitRelease(ctx, trainBuild, fsm.ReleaseStaging); err != nil {
		return err
	}
	if err := d.krollctl(ctx, "release", "list"); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "the feed made it a candidate; the train stages it on %s and soaks it there (1m)\n", stagingDC)
	if err := d.waitRelease(ctx, trainBuild, fsm.ReleaseValidated); err != nil {
		return err
	}
	d.step("%s validated: the control tier takes it at once; the edge's next departure is %s", trainBuild, departure)
	if err := d.waitKernel(ctx, controlDC, trainKernel); err != nil {
		return err
	}
	if err := d.krollctl(ctx, "train", "show", trainLine); err != nil {
		return err
	}
	// The edge cycle is whole weeks: the demo does not wait for the
	// departure but expedites the train, as an operator would for a CVE.
	d.step("the edge: departure days away; expedite the train with the validated fix")
	if err := d.krollctl(ctx, "train", "expedite", trainLine, trainBuild, "--reason", demoCVE+" fixed in "+trainBuild+", validated in staging"); err != nil {
		return err
	}
	t, err := d.ctl.Train(ctx, trainLine)
	if err != nil {
		return err
	}
	// The canary datacenter takes it; the other edge waves follow its
	// soak (the demo stops there: the rest is the same again).
	var canary string
	if err := d.waitFor(ctx, 6*time.Minute, "the edge train's canary wave", func() (bool, error) {
		r, err := d.ctl.Rollout(ctx, t.EdgeRollout)
		if err != nil {
			return false, err
		}
		if r.State == fsm.RolloutFailed || r.State == fsm.RolloutAborted {
			return true, fmt.Errorf("edge rollout %s %s", r.ID, r.State)
		}
		if len(r.Waves) == 0 || r.Waves[0].Name != fsm.WaveCanary || len(r.Waves[0].Progress) != 1 {
			return true, fmt.Errorf("edge rollout %s: no canary datacenter first: %+v", r.ID, r.Waves)
		}
		canary = r.Waves[0].Progress[0].Datacenter
		return !r.Waves[0].Completed.IsZero(), nil
	}); err != nil {
		return err
	}
	if err := d.waitKernel(ctx, canary, trainKernel); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "the canary datacenter %s runs %s; the other edge waves start after its %s soak\n", canary, trainKernel, time.Minute)
	if err := d.krollctl(ctx, "rollout", "status", t.EdgeRollout); err != nil {
		return err
	}
	return d.krollctl(ctx, "cve", "show", demoCVE)
}

// waitFor polls cond every second until it holds, for at most limit; a
// cond that holds with an error ends the wait with it (a final failure).
func (d *demo) waitFor(ctx context.Context, limit time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := cond()
		if ok {
			return err // a failure cond found final
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err != nil {
				return fmt.Errorf("%s: not within %s: %w (logs in %s)", what, limit, err, d.dir)
			}
			return fmt.Errorf("%s: not within %s (logs in %s)", what, limit, d.dir)
		}
		time.Sleep(time.Second)
	}
}

// waitRelease waits until release id reaches state (or a later one).
func (d *demo) waitRelease(ctx context.Context, id, state string) error {
	rank := map[string]int{fsm.ReleaseCandidate: 0, fsm.ReleaseStaging: 1, fsm.ReleaseValidated: 2, fsm.ReleaseRolling: 3, fsm.ReleaseDone: 4}
	return d.waitFor(ctx, 4*time.Minute, "release "+id+" "+state, func() (bool, error) {
		rs, err := d.ctl.Releases(ctx)
		if err != nil {
			return false, err
		}
		for _, r := range rs {
			if r.ID != id {
				continue
			}
			if r.State == fsm.ReleaseRejected {
				return true, fmt.Errorf("release %s rejected: %s (logs in %s)", id, r.StateReason, d.dir)
			}
			if s, ok := rank[r.State]; ok && s >= rank[state] {
				return true, nil
			}
		}
		return false, nil
	})
}

// waitKernel waits until every host of dc runs kernel.
func (d *demo) waitKernel(ctx context.Context, dc, kernel string) error {
	return d.waitFor(ctx, 4*time.Minute, dc+" on "+kernel, func() (bool, error) {
		hs, err := d.ctl.Hosts(ctx, dc)
		if err != nil || len(hs) == 0 {
			return false, err
		}
		for _, h := range hs {
			if h.Kernel != kernel {
				return false, nil
			}
		}
		return true, nil
	})
}
