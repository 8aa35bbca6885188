package fsm

import (
	"bytes"
	"slices"
	"time"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// MaxFeedBuilds bounds the refused builds kept in the state per feed (the
// feed's oldest go first): a feed with many refused builds does not evict
// another feed's records.
const MaxFeedBuilds = 500

// maxFeedText bounds the free-text fields of a feed build record.
const maxFeedText = 2048

// Statuses of a feed build that did not become a release.
const (
	// FeedUnsigned: the feed serves no signature for the manifest.
	FeedUnsigned = "unsigned"
	// FeedBadSignature: the signature does not verify against a key
	// the feed trusts (or does not parse).
	FeedBadSignature = "bad-signature"
	// FeedMismatch: the manifest does not describe the published build
	// (another artifact, size or SHA-256 than the repository's index, or
	// another kernel line than the feed's).
	FeedMismatch = "mismatch"
	// FeedInvalid: the manifest is missing or does not decode.
	FeedInvalid = "invalid"
	// FeedConflict: a release of the manifest's id exists with another
	// manifest (a build changed under the same id).
	FeedConflict = "conflict"
)

// feedStatuses are the statuses a FeedBuild record may carry.
var feedStatuses = map[string]bool{FeedUnsigned: true, FeedBadSignature: true, FeedMismatch: true, FeedInvalid: true, FeedConflict: true}

// SourceFeed is the Release.Source prefix of a feed's releases.
const SourceFeed = "feed:"

// FeedBuild is a build a feed poller found that did not become a release.
type FeedBuild struct {
	Feed string `json:"feed"`
	Line string `json:"line"`
	// Key identifies the build in its feed: the .deb's Filename in an apt
	// repository, the manifest URL in a manifest index.
	Key         string `json:"key"`
	Package     string `json:"package,omitempty"`
	Version     string `json:"version,omitempty"`
	ManifestURL string `json:"manifest_url"`
	// Release is the manifest's id, when it decoded.
	Release string `json:"release,omitempty"`
	// Digest is the poller's digest of what it saw (manifest, signature,
	// index entry): the same build seen again is not recorded twice.
	Digest string `json:"digest"`
	Status string `json:"status"`
	Reason string `json:"reason"`
	// Seen is when it was recorded.
	Seen time.Time `json:"seen"`
}

// RecordFeedBuild is what a feed poller found (TypeFeedBuild): a verified
// build (Release set, Build.Status empty) becomes a candidate release, a
// refused one (Release nil, Build.Status set) is recorded in
// State.FeedBuilds and never rolled.
type RecordFeedBuild struct {
	Build   FeedBuild `json:"build"`
	Release *Release  `json:"release,omitempty"`
}

// feedBuild records a feed's build. A verified one becomes a release in
// state candidate with Source "feed:<feed>" (the same release again is a
// no-op; another manifest under a known id is recorded as a conflict);
// a refused one replaces the record of the same feed and key, unless
// nothing changed (then it is a no-op). Result.Reason is the status
// recorded ("candidate", a refusal status, or "" for a no-op).
func (s *State) feedBuild(p RecordFeedBuild) Result {
	b := p.Build
	switch {
	case !ValidName(b.Feed):
		return refused(wire.KindInvalidRequest, "invalid feed name %q", b.Feed)
	case b.Key == "" || len(b.Key) > maxFeedText || len(b.ManifestURL) > maxFeedText || len(b.Reason) > maxFeedText ||
		len(b.Package) > maxFeedText || len(b.Version) > maxFeedText || len(b.Digest) > 128 || len(b.Line) > 32:
		return refused(wire.KindInvalidRequest, "feed build record: key missing or a field too long")
	case p.Release == nil && !feedStatuses[b.Status]:
		return refused(wire.KindInvalidRequest, "feed build status %q: want one of unsigned, bad-signature, mismatch, invalid, conflict", b.Status)
	case p.Release != nil && b.Status != "":
		return refused(wire.KindInvalidRequest, "a feed build that is a release has no refusal status (%q)", b.Status)
	}
	b.Seen = s.Now
	if p.Release == nil {
		return s.refuseFeedBuild(b)
	}
	r := *p.Release
	switch {
	case !ValidName(r.ID):
		return refused(wire.KindInvalidRequest, "invalid release id %q", r.ID)
	case r.Source != SourceFeed+b.Feed:
		return refused(wire.KindInvalidRequest, "release source %q: want %q", r.Source, SourceFeed+b.Feed)
	case r.Line != b.Line:
		return refused(wire.KindInvalidRequest, "release %s is of line %q, the feed's is %q", r.ID, r.Line, b.Line)
	}
	if old := s.Releases[r.ID]; old != nil {
		if bytes.Equal(old.Manifest, r.Manifest) {
			return Result{}
		}
		b.Status, b.Release = FeedConflict, r.ID
		b.Reason = conflictReason(r.ID)
		return s.refuseFeedBuild(b)
	}
	r.Added = s.Now
	r.State, r.StateReason = ReleaseCandidate, "new build from feed "+b.Feed
	s.Releases[r.ID] = &r
	// A build once refused under this key and now verified is no longer
	// refused.
	s.FeedBuilds = slices.DeleteFunc(s.FeedBuilds, func(o FeedBuild) bool { return o.Feed == b.Feed && o.Key == b.Key })
	s.event("release_candidate", "", "", "release %s (line %s, kernel %s) from feed %s (%s) is a candidate, signed by %s",
		r.ID, r.Line, r.KernelVersion, b.Feed, b.Key, r.KeyID)
	return Result{Reason: ReleaseCandidate}
}

// refuseFeedBuild records a refused build (see feedBuild). The same
// digest recorded again for the feed and key updates the record without
// an event (what the poller saw did not change); the feed keeps at most
// MaxFeedBuilds records.
func (s *State) refuseFeedBuild(b FeedBuild) Result {
	again := false
	for i, o := range s.FeedBuilds {
		if o.Feed != b.Feed || o.Key != b.Key {
			continue
		}
		if o.Digest == b.Digest && o.Status == b.Status && o.Reason == b.Reason {
			return Result{}
		}
		again = o.Digest == b.Digest && b.Digest != ""
		s.FeedBuilds = append(s.FeedBuilds[:i], s.FeedBuilds[i+1:]...)
		break
	}
	s.FeedBuilds = append(s.FeedBuilds, b)
	n := 0
	for _, o := range s.FeedBuilds {
		if o.Feed == b.Feed {
			n++
		}
	}
	for i := 0; n > MaxFeedBuilds && i < len(s.FeedBuilds); {
		if s.FeedBuilds[i].Feed == b.Feed {
			s.FeedBuilds = append(s.FeedBuilds[:i], s.FeedBuilds[i+1:]...)
			n--
			continue
		}
		i++
	}
	if again {
		return Result{Reason: b.Status}
	}
	what := b.Key
	if b.Release != "" {
		what = b.Release + " (" + b.Key + ")"
	}
	s.event("feed_build_refused", "", "", "feed %s: build %s refused, %s: %s", b.Feed, what, b.Status, b.Reason)
	return Result{Reason: b.Status}
}

// FeedBuildKnown reports whether the state already holds what a poller
// would record for build b of feed: a release of the same manifest from
// that feed, or a refusal of the same digest, status and reason.
func (s *State) FeedBuildKnown(b FeedBuild, manifest []byte) bool {
	if b.Status == "" {
		r := s.Releases[b.Release]
		if r == nil {
			return false
		}
		if bytes.Equal(r.Manifest, manifest) {
			return true
		}
		// Another manifest under the id: known when its conflict is.
		b.Status = FeedConflict
		b.Reason = conflictReason(b.Release)
	}
	for _, o := range s.FeedBuilds {
		if o.Feed == b.Feed && o.Key == b.Key {
			return o.Digest == b.Digest && o.Status == b.Status && o.Reason == b.Reason
		}
	}
	return false
}

// FeedBuildViews returns the refused feed builds, newest first, of the
// feed named (every feed when empty).
func (s *State) FeedBuildViews(feed string) []wire.FeedBuild {
	out := []wire.FeedBuild{}
	for i := len(s.FeedBuilds) - 1; i >= 0; i-- {
		b := s.FeedBuilds[i]
		if feed != "" && b.Feed != feed {
			continue
		}
		out = append(out, wire.FeedBuild{Feed: b.Feed, Line: b.Line, Key: b.Key, Package: b.Package, Version: b.Version,
			ManifestURL: b.ManifestURL, Release: b.Release, Status: b.Status, Reason: b.Reason, Seen: b.Seen})
	}
	return out
}

// conflictReason is the reason of a FeedConflict.
func conflictReason(id string) string {
	return "release " + id + " exists with a different manifest: a build must not change under the same id"
}
