package feed_test

import (
	"context"
	"crypto/ed25519"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/feed"
	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/internal/testcoord"
	"github.com/kroll-dev/kroll/pkg/release"
	"github.com/kroll-dev/kroll/pkg/wire"
)

var (
	buildKey   = testKey(1) // trusted
	strangeKey = testKey(2) // not trusted
)

func trusted() []ed25519.PublicKey { return []ed25519.PublicKey{buildKey.Public().(ed25519.PublicKey)} }

// eventually waits (bounded) until cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 30 s: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func leaderOf(cs []*testcoord.Coordinator) *testcoord.Coordinator {
	for _, c := range cs {
		if c.Store.IsLeader() {
			return c
		}
	}
	return nil
}

func releaseByID(t *testing.T, c *testcoord.Coordinator, id string) *wire.Release {
	t.Helper()
	rels, err := c.Client.Releases(context.Background())
	if err != nil {
		return nil
	}
	for _, r := range rels {
		if r.ID == id {
			return &r
		}
	}
	return nil
}

func refusedByKey(c *testcoord.Coordinator) map[string]wire.FeedBuild {
	out := map[string]wire.FeedBuild{}
	bs, err := c.Client.FeedBuilds(context.Background(), "weekly")
	if err != nil {
		return nil
	}
	for _, b := range bs {
		out[b.Key] = b
	}
	return out
}

// TestAptFeedCluster: a real apt repository (dpkg-deb, dpkg-scanpackages,
// Packages.gz only) polled by a real 3-node quorum. The signed build
// becomes a candidate release with its source; the unsigned one, the one
// whose manifest has another SHA-256 than the repository, the one signed
// by an untrusted key and the one of another line are refused with their
// reasons and are no releases; a package the glob does not select is not
// looked at; followers never poll; after the leader stops, the new leader
// resumes and picks up the next build; every outcome is an event.
func TestAptFeedCluster(t *testing.T) {
	repo := newAptRepo(t)
	good, size, sum := repo.addDeb("linux-image-6.12.80-cf1-amd64", "6.12.80-1")
	repo.publish(good, manifest("6.12.80-cf1", "6.12.80-cf1-amd64", good, size, sum), buildKey)
	unsigned, size, sum := repo.addDeb("linux-image-6.12.81-cf1-amd64", "6.12.81-1")
	repo.publish(unsigned, manifest("6.12.81-cf1", "6.12.81-cf1-amd64", unsigned, size, sum), nil)
	mism, size, _ := repo.addDeb("linux-image-6.12.82-cf1-amd64", "6.12.82-1")
	repo.publish(mism, manifest("6.12.82-cf1", "6.12.82-cf1-amd64", mism, size, strings.Repeat("ab", 32)), buildKey)
	strange, size, sum := repo.addDeb("linux-image-6.12.83-cf1-amd64", "6.12.83-1")
	repo.publish(strange, manifest("6.12.83-cf1", "6.12.83-cf1-amd64", strange, size, sum), strangeKey)
	other, size, sum := repo.addDeb("linux-image-6.12.85-cf1-amd64", "6.12.85-1")
	m := manifest("6.18.2-cf1", "6.18.2-cf1-amd64", other, size, sum)
	repo.publish(other, m, buildKey)
	ignored, _, _ := repo.addDeb("linux-headers-6.12.80-cf1-amd64", "6.12.80-1")
	repo.index(false)

	cs := testcoord.StartCluster(t, 3, testcoord.Options{ReleaseKeys: trusted(), Feeds: []feed.Config{{
		Name: "weekly", Kind: feed.KindApt, URL: repo.srv.URL + "/", Suite: "stable", Component: "main", Arch: "amd64",
		Package: "linux-image-6.12.*-cf*-amd64", Line: "6.12", Interval: time.Second,
	}}})
	leader := leaderOf(cs)

	eventually(t, "the signed build is a candidate", func() bool { return releaseByID(t, leader, "6.12.80-cf1") != nil })
	r := releaseByID(t, leader, "6.12.80-cf1")
	if r.State != fsm.ReleaseCandidate || r.Source != "feed:weekly" || r.Line != "6.12" || r.KernelVersion != "6.12.80-cf1-amd64" || r.KeyID == "" {
		t.Fatalf("release %+v", r)
	}
	want := map[string]struct{ status, reason string }{
		unsigned: {fsm.FeedUnsigned, "no signature published at " + repo.srv.URL + "/" + unsigned + ".manifest.json.sig"},
		mism:     {fsm.FeedMismatch, "manifest sha256 " + strings.Repeat("ab", 32) + ", the Packages index has "},
		strange:  {fsm.FeedBadSignature, "signature key is not trusted"},
		other:    {fsm.FeedMismatch, "manifest of line 6.18, the feed's is 6.12"},
	}
	eventually(t, "the refused builds are listed", func() bool { return len(refusedByKey(leader)) == len(want) })
	for key, b := range refusedByKey(leader) {
		w, ok := want[key]
		if !ok || b.Status != w.status || !strings.Contains(b.Reason, w.reason) || b.Feed != "weekly" || b.Line != "6.12" {
			t.Errorf("refused %s: %s %q, want %s containing %q", key, b.Status, b.Reason, w.status, w.reason)
		}
	}
	rels, err := leader.Client.Releases(context.Background())
	must(t, err)
	if len(rels) != 1 {
		t.Fatalf("releases %+v: only the signed, matching build is one", rels)
	}
	if n := repo.hitCount("/" + ignored + ".manifest.json"); n != 0 {
		t.Errorf("the manifest of %s, which the glob does not select, was fetched %d times", ignored, n)
	}
	// Nothing is recorded twice while the repository does not change.
	for _, c := range cs {
		if c != leader {
			if st := c.Feeds[0].Stats(); st.Polls != 0 || st.Failures != 0 {
				t.Errorf("follower %s polled: %+v", c.ID, st)
			}
		}
	}
	polls := leader.Feeds[0].Stats().Polls
	eventually(t, "two more polls", func() bool { return leader.Feeds[0].Stats().Polls >= polls+2 })
	evs, err := leader.Client.Events(context.Background(), 0, 1000)
	must(t, err)
	count := map[string]int{}
	for _, e := range evs {
		count[e.Type]++
	}
	if count["release_candidate"] != 1 || count["feed_build_refused"] != len(want) {
		t.Fatalf("events %v", count)
	}

	// The leader goes away; the new one resumes.
	leader.Stop()
	eventually(t, "a new leader", func() bool { l := leaderOf(cs); return l != nil && l != leader })
	next, size, sum := repo.addDeb("linux-image-6.12.86-cf1-amd64", "6.12.86-1")
	repo.publish(next, manifest("6.12.86-cf1", "6.12.86-cf1-amd64", next, size, sum), buildKey)
	repo.index(false)
	newLeader := leaderOf(cs)
	eventually(t, "the next build is a candidate", func() bool {
		r := releaseByID(t, newLeader, "6.12.86-cf1")
		return r != nil && r.State == fsm.ReleaseCandidate
	})
	evs, err = newLeader.Client.Events(context.Background(), 0, 1000)
	must(t, err)
	count = map[string]int{}
	for _, e := range evs {
		count[e.Type]++
	}
	if count["release_candidate"] != 2 || count["feed_build_refused"] != len(want) {
		t.Fatalf("after the leader change: events %v (nothing recorded twice)", count)
	}
}

// TestIndexFeed: a manifest index feed polled step by step on a real
// coordinator: relative and absolute URLs, an unsigned manifest, a
// manifest that does not decode, a manifest changed under a known id
// (conflict), idempotent polls, and an unchanged index (conditional GET).
func TestIndexFeed(t *testing.T) {
	repo := newAptRepo(t) // a file server is all an index feed needs
	// No ticks or liveness passes: the log moves only by the feed's
	// commands (see the end).
	c := testcoord.Start(t, testcoord.Options{ReleaseKeys: trusted(), TickInterval: time.Hour, LivenessInterval: time.Hour})
	p, err := feed.New(feed.Config{Name: "weekly", Kind: feed.KindIndex, URL: repo.srv.URL + "/kernel/index.json", Line: "6.12",
		Interval: time.Minute, Keys: trusted()}, c.Store, feed.Options{})
	must(t, err)
	ctx := context.Background()
	mtime := time.Now().Add(-time.Hour)
	writeIndex := func(body string) {
		must(t, os.MkdirAll(filepath.Join(repo.dir, "kernel"), 0o755))
		must(t, os.WriteFile(filepath.Join(repo.dir, "kernel", "index.json"), []byte(body), 0o644))
		// A later modification time than any the poller saw, and more
		// than a second in the past: a strong validator (see
		// TestConditionalGetSameSecond).
		mtime = mtime.Add(time.Minute)
		must(t, os.Chtimes(filepath.Join(repo.dir, "kernel", "index.json"), mtime, mtime))
	}
	deb := func(id string) release.Manifest {
		return manifest(id, id+"-amd64", "pool/linux-image-"+id+"-amd64_1_amd64.deb", 1000, strings.Repeat("cd", 32))
	}
	writeSigned(t, filepath.Join(repo.dir, "kernel", "a.json"), deb("6.12.80-cf1"), buildKey)
	writeSigned(t, filepath.Join(repo.dir, "other", "b.json"), deb("6.12.81-cf1"), buildKey)
	must(t, os.Rename(filepath.Join(repo.dir, "other", "b.json.sig"), filepath.Join(repo.dir, "other", "b.sig")))
	writeSigned(t, filepath.Join(repo.dir, "kernel", "unsigned.json"), deb("6.12.82-cf1"), nil)
	must(t, os.WriteFile(filepath.Join(repo.dir, "kernel", "broken.json"), []byte(`{"id":`), 0o644))
	writeIndex(`{"manifests":[{"url":"a.json"},{"url":"` + repo.srv.URL + `/other/b.json","sig":"../other/b.sig"},{"url":"unsigned.json"},{"url":"broken.json"}]}`)

	// Refused builds are looked at again at every poll (nothing is
	// recorded twice); the releases are not fetched again.
	for i, want := range []feed.Summary{
		{Builds: 4, Candidates: 2, Refused: 2},
		{Builds: 4},
	} {
		got, err := p.Poll(ctx)
		if err != nil || got != want {
			t.Fatalf("poll %d: %+v, %v; want %+v", i, got, err, want)
		}
	}
	for _, id := range []string{"6.12.80-cf1", "6.12.81-cf1"} {
		if r := releaseByID(t, c, id); r == nil || r.State != fsm.ReleaseCandidate || r.Source != "feed:weekly" {
			t.Fatalf("release %s: %+v", id, r)
		}
	}
	refused := refusedByKey(c)
	u := func(p string) string { v, _ := url.JoinPath(repo.srv.URL, p); return v }
	if b := refused[u("kernel/unsigned.json")]; b.Status != fsm.FeedUnsigned || b.Release != "6.12.82-cf1" {
		t.Errorf("unsigned: %+v", b)
	}
	if b := refused[u("kernel/broken.json")]; b.Status != fsm.FeedInvalid || !strings.Contains(b.Reason, "decode release manifest") {
		t.Errorf("broken: %+v", b)
	}

	// Publishing the missing signature is enough: the index is the same.
	hits := repo.hitCount("/kernel/a.json")
	writeSigned(t, filepath.Join(repo.dir, "kernel", "unsigned.json"), deb("6.12.82-cf1"), buildKey)
	if got, err := p.Poll(ctx); err != nil || got != (feed.Summary{Builds: 4, Candidates: 1}) {
		t.Fatalf("poll after signing: %+v, %v", got, err)
	}
	if r := releaseByID(t, c, "6.12.82-cf1"); r == nil || r.State != fsm.ReleaseCandidate {
		t.Fatalf("signed later: %+v", r)
	}
	if _, still := refusedByKey(c)[u("kernel/unsigned.json")]; still {
		t.Error("the build signed later is still listed as refused")
	}
	if n := repo.hitCount("/kernel/a.json"); n != hits {
		t.Errorf("a release's manifest was fetched again (%d times)", n-hits)
	}

	// The build 6.12.80-cf1 is republished with other content, signed:
	// a conflict, reported, and the release keeps its manifest.
	changed := deb("6.12.80-cf1")
	changed.Notes = "rebuilt"
	writeSigned(t, filepath.Join(repo.dir, "kernel", "a2.json"), changed, buildKey)
	writeIndex(`{"manifests":[{"url":"a.json"},{"url":"a2.json"},{"url":"` + repo.srv.URL + `/other/b.json","sig":"../other/b.sig"},{"url":"unsigned.json"},{"url":"broken.json"}]}`)
	for i, want := range []feed.Summary{
		{Builds: 5, Refused: 1},
		{Builds: 5},
	} {
		got, err := p.Poll(ctx)
		if err != nil || got != want {
			t.Fatalf("poll %d after the change: %+v, %v; want %+v", i, got, err, want)
		}
	}
	if b := refusedByKey(c)[u("kernel/a2.json")]; b.Status != fsm.FeedConflict || b.Release != "6.12.80-cf1" {
		t.Errorf("changed build: %+v", b)
	}
	if r := releaseByID(t, c, "6.12.80-cf1"); r == nil || r.State != fsm.ReleaseCandidate {
		t.Errorf("the release of the conflicting id changed: %+v", r)
	}

	// An index of releases only is not processed again while it does not
	// change (conditional GET).
	writeIndex(`{"manifests":[{"url":"a.json"},{"url":"unsigned.json"}]}`)
	for i, want := range []feed.Summary{
		{Builds: 2},
		{Unchanged: true},
	} {
		got, err := p.Poll(ctx)
		if err != nil || got != want {
			t.Fatalf("poll %d of the clean index: %+v, %v; want %+v", i, got, err, want)
		}
	}
	if _, err := c.Client.FeedBuilds(ctx, "bad name"); err == nil || !strings.Contains(err.Error(), "invalid feed name") {
		t.Errorf("feed builds of a bad name: %v", err)
	}

	// A new poller (a new leader) records nothing again.
	p2, err := feed.New(feed.Config{Name: "weekly", Kind: feed.KindIndex, URL: repo.srv.URL + "/kernel/index.json", Line: "6.12",
		Interval: time.Minute, Keys: trusted()}, c.Store, feed.Options{})
	must(t, err)
	var before uint64
	c.Store.FSM().View(func(s *fsm.State) { before = s.Index })
	if got, err := p2.Poll(ctx); err != nil || got != (feed.Summary{Builds: 2}) {
		t.Fatalf("new poller: %+v, %v", got, err)
	}
	c.Store.FSM().View(func(s *fsm.State) {
		if s.Index != before {
			t.Errorf("a new poller proposed %d commands for builds already recorded", s.Index-before)
		}
	})
}
