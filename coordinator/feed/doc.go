// Package feed polls build feeds for new kernel builds and turns the ones
// signed by a trusted build key into candidate releases (issue #14, the
// build feed). It runs on the coordinator's Raft leader only; followers
// idle, and a new leader resumes where the old one stopped (what was
// already recorded is in the replicated state and is not recorded again).
//
// # Trust
//
// The trust root is the release manifest's detached signature, exactly as
// for `krollctl release add`: a build becomes a release only when
// release.Open verifies its manifest against the feed's keys, which are
// the coordinator's [releases] trusted_keys or a subset of them (a feed
// may narrow the trusted keys, never widen them). The repository's own
// metadata (InRelease, Release.gpg) is not verified: it is transport, not
// trust. A build that fails is recorded in the replicated state (see
// fsm.FeedBuild) with its status and reason and is never rolled:
//
//   - unsigned: no manifest or no signature is published for it;
//   - bad-signature: the signature does not parse or verify against a key
//     the feed trusts;
//   - invalid: the manifest does not decode or validate;
//   - mismatch: the manifest is of another kernel line than the feed, or
//     (apt) names no artifact that is the published .deb with the size and
//     SHA-256 of the repository's Packages index;
//   - conflict: a release of the manifest's id exists with another
//     manifest (a build must never change under the same id).
//
// # Apt repositories (kind "apt")
//
// A Debian-format repository as apt reads it: the feed fetches
//
//	URL/dists/SUITE/COMPONENT/binary-ARCH/Packages
//
// (or Packages.gz, or Packages.xz, when the plain file is not there) and
// looks at every stanza whose Package matches the feed's glob
// (path.Match, e.g. "linux-image-6.12.*-cf*-amd64"). Next to each .deb
// the build publishes its signed release manifest:
//
//	URL/FILENAME                     the .deb (FILENAME from the stanza)
//	URL/FILENAME.manifest.json       its release manifest (kind "deb")
//	URL/FILENAME.manifest.json.sig   the manifest's detached signature
//
// The manifest must list an artifact named like the .deb (its base name)
// with the Size and SHA256 the Packages stanza gives. The stanzas are
// parsed strictly (ParsePackages): Package, Version, Filename, Size and
// SHA256 are required.
//
// # Manifest indexes (kind "index")
//
// A JSON document at the feed's URL lists signed release manifests:
//
//	{"manifests": [
//	  {"url": "6.12.80-cf1.json", "sig": "6.12.80-cf1.json.sig"},
//	  {"url": "https://builds.example.net/6.12.81-cf1.json"}
//	]}
//
// Relative URLs are resolved against the index's URL; "sig" defaults to
// the manifest URL + ".sig". DecodeIndex decodes it strictly.
//
// # Polling
//
// Every interval (jittered ±10%), bounded by the feed's timeout per
// request and by size limits per document. A build that became a release
// is not fetched again while its index entry stays; a refused one is
// looked at again at every poll (publishing its signature later is
// enough; nothing is recorded twice). Conditional GET (ETag,
// Last-Modified) skips an unchanged index whose builds are all releases,
// only with validators of an index modified at least a second before the
// server's Date (an index rewritten within the second it was fetched
// keeps its Last-Modified). Errors back off exponentially
// (github.com/cenkalti/backoff) up to the interval. Every new candidate
// and every refused build is an event (release_candidate,
// feed_build_refused); metrics count polls, errors, candidates and
// refusals by status.
package feed
