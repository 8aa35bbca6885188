package fsm

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func feedRelease(id, manifest string) *Release {
	return &Release{ID: id, Line: "6.12", KernelVersion: "6.12.80-cf1", Kind: "deb", KeyID: "k1", Source: "feed:weekly",
		Manifest: json.RawMessage(manifest), Signature: json.RawMessage(`{}`)}
}

// TestFeedBuild: each step's result and the state it leaves (releases
// with state and source, refused records, events).
func TestFeedBuild(t *testing.T) {
	build := func(key, status, digest string) FeedBuild {
		return FeedBuild{Feed: "weekly", Line: "6.12", Key: key, ManifestURL: "http://repo/" + key + ".manifest.json", Status: status, Reason: "because " + status, Digest: digest}
	}
	type step struct {
		p         RecordFeedBuild
		kind      string // "ok" or the refusal kind
		reason    string // Result.Reason
		releases  string // "id=state/source,..." sorted
		refused   string // "key:status,..." oldest first
		newEvents int
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"verified build becomes a candidate, again is a no-op", []step{
			{RecordFeedBuild{Build: build("a.deb", "", "d1"), Release: feedRelease("r1", `{"a":1}`)}, "ok", "candidate", "r1=candidate/feed:weekly", "", 1},
			{RecordFeedBuild{Build: build("a.deb", "", "d1"), Release: feedRelease("r1", `{"a":1}`)}, "ok", "", "r1=candidate/feed:weekly", "", 0},
		}},
		{"changed manifest under a known id is a conflict", []step{
			{RecordFeedBuild{Build: build("a.deb", "", "d1"), Release: feedRelease("r1", `{"a":1}`)}, "ok", "candidate", "r1=candidate/feed:weekly", "", 1},
			{RecordFeedBuild{Build: build("b.deb", "", "d2"), Release: feedRelease("r1", `{"a":2}`)}, "ok", "conflict", "r1=candidate/feed:weekly", "b.deb:conflict", 1},
			{RecordFeedBuild{Build: build("b.deb", "", "d2"), Release: feedRelease("r1", `{"a":2}`)}, "ok", "", "r1=candidate/feed:weekly", "b.deb:conflict", 0},
		}},
		{"refused builds are recorded once, replaced when they change, cleared when verified", []step{
			{RecordFeedBuild{Build: build("a.deb", FeedUnsigned, "d1")}, "ok", "unsigned", "", "a.deb:unsigned", 1},
			{RecordFeedBuild{Build: build("a.deb", FeedUnsigned, "d1")}, "ok", "", "", "a.deb:unsigned", 0},
			{RecordFeedBuild{Build: build("b.deb", FeedMismatch, "d2")}, "ok", "mismatch", "", "a.deb:unsigned,b.deb:mismatch", 1},
			{RecordFeedBuild{Build: build("a.deb", FeedBadSignature, "d3")}, "ok", "bad-signature", "", "b.deb:mismatch,a.deb:bad-signature", 1},
			// The same digest again with another verdict (the feed's keys
			// changed): the record is updated, no new event.
			{RecordFeedBuild{Build: build("a.deb", FeedMismatch, "d3")}, "ok", "mismatch", "", "b.deb:mismatch,a.deb:mismatch", 0},
			{RecordFeedBuild{Build: build("a.deb", "", "d4"), Release: feedRelease("r1", `{"a":1}`)}, "ok", "candidate", "r1=candidate/feed:weekly", "b.deb:mismatch", 1},
		}},
		{"invalid records are refused", []step{
			{RecordFeedBuild{Build: build("a.deb", "", "d1")}, "invalid_request", "", "", "", 0},
			{RecordFeedBuild{Build: build("a.deb", "weird", "d1")}, "invalid_request", "", "", "", 0},
			{RecordFeedBuild{Build: build("a.deb", FeedUnsigned, "d1"), Release: feedRelease("r1", `{}`)}, "invalid_request", "", "", "", 0},
			{RecordFeedBuild{Build: build("", FeedUnsigned, "d1")}, "invalid_request", "", "", "", 0},
			{RecordFeedBuild{Build: FeedBuild{Feed: "bad feed", Key: "k", Status: FeedUnsigned}}, "invalid_request", "", "", "", 0},
			{RecordFeedBuild{Build: build("a.deb", "", "d1"), Release: func() *Release { r := feedRelease("r1", `{}`); r.Source = "feed:other"; return r }()}, "invalid_request", "", "", "", 0},
			{RecordFeedBuild{Build: build("a.deb", "", "d1"), Release: func() *Release { r := feedRelease("r1", `{}`); r.Line = "6.18"; return r }()}, "invalid_request", "", "", "", 0},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := New()
			for i, st := range tc.steps {
				var before int
				f.View(func(s *State) { before = len(s.Events) })
				res := apply(t, f, TypeFeedBuild, t0.Add(time.Duration(i)*time.Minute), st.p)
				if kind(res) != st.kind || res.Reason != st.reason {
					t.Fatalf("step %d: %s %q (%v), want %s %q", i, kind(res), res.Reason, res.Err, st.kind, st.reason)
				}
				f.View(func(s *State) {
					var rels, ref []string
					for _, id := range sortedKeys(s.Releases) {
						r := s.Releases[id]
						rels = append(rels, fmt.Sprintf("%s=%s/%s", id, r.State, r.Source))
					}
					for _, b := range s.FeedBuilds {
						ref = append(ref, b.Key+":"+b.Status)
					}
					if got := strings.Join(rels, ","); got != st.releases {
						t.Errorf("step %d: releases %q, want %q", i, got, st.releases)
					}
					if got := strings.Join(ref, ","); got != st.refused {
						t.Errorf("step %d: refused %q, want %q", i, got, st.refused)
					}
					if got := len(s.Events) - before; got != st.newEvents {
						t.Errorf("step %d: %d new events, want %d", i, got, st.newEvents)
					}
				})
			}
		})
	}
}

// TestFeedBuildBounded: at most MaxFeedBuilds refused builds are kept per
// feed, the newest, and another feed's records stay; FeedBuildKnown and
// FeedBuildViews agree with the state.
func TestFeedBuildBounded(t *testing.T) {
	f := New()
	for i := range 3 {
		b := FeedBuild{Feed: "other", Line: "6.18", Key: fmt.Sprintf("o%d", i), Status: FeedInvalid, Reason: "broken", Digest: "o"}
		if res := apply(t, f, TypeFeedBuild, t0, RecordFeedBuild{Build: b}); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	for i := range MaxFeedBuilds + 10 {
		b := FeedBuild{Feed: "weekly", Line: "6.12", Key: fmt.Sprintf("k%d", i), Status: FeedUnsigned, Reason: "no .sig", Digest: "d"}
		if res := apply(t, f, TypeFeedBuild, t0, RecordFeedBuild{Build: b}); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	f.View(func(s *State) {
		if len(s.FeedBuilds) != MaxFeedBuilds+3 || s.FeedBuilds[3].Key != "k10" {
			t.Fatalf("%d kept, oldest weekly %s", len(s.FeedBuilds), s.FeedBuilds[3].Key)
		}
		v := s.FeedBuildViews("weekly")
		if len(v) != MaxFeedBuilds || v[0].Key != fmt.Sprintf("k%d", MaxFeedBuilds+9) || v[len(v)-1].Key != "k10" {
			t.Fatalf("views: %d, newest %s", len(v), v[0].Key)
		}
		if o := s.FeedBuildViews("other"); len(o) != 3 {
			t.Fatalf("another feed's records evicted: %d left", len(o))
		}
		known := FeedBuild{Feed: "weekly", Key: "k10", Status: FeedUnsigned, Reason: "no .sig", Digest: "d"}
		if !s.FeedBuildKnown(known, nil) {
			t.Error("k10 not known")
		}
		known.Digest = "other"
		if s.FeedBuildKnown(known, nil) {
			t.Error("k10 with another digest known")
		}
		if s.FeedBuildKnown(FeedBuild{Release: "nope"}, nil) {
			t.Error("unknown release known")
		}
	})
}
