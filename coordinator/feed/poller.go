package feed

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/ulikunitz/xz"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/release"
)

// maxSigSize bounds a detached signature document.
const maxSigSize = 64 << 10

// maxReason bounds the reason recorded for a refused build.
const maxReason = 1024

// Store is what a poller needs of the coordinator's store (store.Store).
type Store interface {
	// IsLeader reports whether this node leads: only the leader polls.
	IsLeader() bool
	// Apply proposes a command (leader only).
	Apply(ctx context.Context, typ fsm.Type, payload any) (fsm.Result, error)
	// FSM is the replicated state, to skip what is already recorded.
	FSM() *fsm.FSM
}

// Options are a poller's optional settings.
type Options struct {
	Logger  *slog.Logger
	Metrics *Metrics
	// LeaderCheck is how often Run looks whether this node leads and
	// whether a poll is due (default 1s).
	LeaderCheck time.Duration
}

// Poller polls one feed (see the package doc).
type Poller struct {
	cfg    Config
	store  Store
	client *http.Client
	log    *slog.Logger
	m      *Metrics
	base   *url.URL
	check  time.Duration

	// validators of the last index processed in full (conditional GET).
	indexURL, etag, lastModified string
	// polls and failures count Poll's outcomes (Stats).
	polls, failures atomic.Uint64
	// done maps the builds processed (recorded, or found recorded) to the
	// digest of their index entry: not fetched again while it stays.
	done map[string]string
	// proposed holds the refusals (digest and status) this leader proposed
	// or found recorded: each is proposed at most once per leadership,
	// even after the state evicted its record (MaxFeedBuilds). It is
	// seeded from the state's records when this node starts leading.
	proposed *digestSet
}

// maxProposed bounds a poller's set of refusals proposed: twice the
// builds an index may list.
const maxProposed = 2 * MaxIndexEntries

func newDigestSet() *digestSet { return &digestSet{m: map[string]struct{}{}} }

// digestSet is a bounded set of strings; the oldest go first.
type digestSet struct {
	seeded bool
	m      map[string]struct{}
	order  []string
}

func (d *digestSet) has(k string) bool {
	_, ok := d.m[k]
	return ok
}

func (d *digestSet) add(k string) {
	if d.has(k) {
		return
	}
	if len(d.order) >= maxProposed {
		delete(d.m, d.order[0])
		d.order = d.order[1:]
	}
	d.m[k] = struct{}{}
	d.order = append(d.order, k)
}

// refusalKey is how proposed knows a refusal: its digest and status.
func refusalKey(digest, status string) string { return digest + "\x00" + status }

// New returns a poller of the feed cfg (validated here) that records
// what it finds through st.
func New(cfg Config, st Store, o Options) (*Poller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	base, _ := url.Parse(cfg.URL)
	if cfg.Kind == KindApt && !strings.HasSuffix(base.Path, "/") {
		base.Path += "/"
	}
	tlsConf, err := cfg.TLSConfig()
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	tr.ResponseHeaderTimeout = cfg.Timeout
	tr.MaxIdleConnsPerHost = 2
	client := &http.Client{Transport: tr, Timeout: cfg.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			switch {
			case len(via) >= 5:
				return errors.New("more than 5 redirects")
			case req.URL.Scheme != "https" && (req.URL.Scheme != "http" || via[0].URL.Scheme == "https"):
				return fmt.Errorf("redirect to %s: not an https URL", req.URL.Redacted())
			}
			return nil
		}}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.LeaderCheck <= 0 {
		o.LeaderCheck = time.Second
	}
	return &Poller{cfg: cfg, store: st, client: client, log: o.Logger.With("feed", cfg.Name), m: o.Metrics, base: base,
		check: o.LeaderCheck, done: map[string]string{}, proposed: newDigestSet()}, nil
}

// TLSConfig returns the TLS settings of the feed's requests: TLS 1.2 or
// later, the CAs of CAFile when set (else the system's).
func (c *Config) TLSConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile == "" {
		return tc, nil
	}
	pem, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("feed %q: ca_file: %w", c.Name, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("feed %q: ca_file %s holds no PEM certificates", c.Name, c.CAFile)
	}
	tc.RootCAs = pool
	return tc, nil
}

// Name returns the feed's name.
func (p *Poller) Name() string { return p.cfg.Name }

// Run polls the feed while this node leads, until ctx ends: at once when
// it becomes leader, then every interval (jittered ±10%), after an error
// with exponential backoff up to the interval. Followers do not poll.
func (p *Poller) Run(ctx context.Context) {
	bo := backoff.ExponentialBackOff{InitialInterval: min(5*time.Second, p.cfg.Interval), RandomizationFactor: 0.5, Multiplier: 2,
		MaxInterval: p.cfg.Interval}
	bo.Reset()
	tick := time.NewTicker(p.check)
	defer tick.Stop()
	leading := false
	var due time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !p.store.IsLeader() {
			if leading {
				p.log.Info("feed: no longer leader, polling stops")
				// The next leadership re-learns from the state.
				p.proposed = newDigestSet()
			}
			leading = false
			continue
		}
		if !leading {
			leading, due = true, time.Now()
			p.log.Info("feed: leader, polling", "url", p.cfg.URL, "interval", p.cfg.Interval)
		}
		if time.Now().Before(due) {
			continue
		}
		sum, err := p.Poll(ctx)
		if err != nil {
			wait := bo.NextBackOff()
			p.log.Warn("feed: poll failed", "err", err, "retry_in", wait)
			due = time.Now().Add(wait)
			continue
		}
		bo.Reset()
		if sum.Candidates > 0 || sum.Refused > 0 {
			p.log.Info("feed: polled", "candidates", sum.Candidates, "refused", sum.Refused, "builds", sum.Builds)
		}
		due = time.Now().Add(jitter(p.cfg.Interval))
	}
}

// jitter returns d ±10%.
func jitter(d time.Duration) time.Duration {
	return d - d/10 + time.Duration(rand.Int64N(int64(d/5)+1))
}

// Summary is what one poll found.
type Summary struct {
	// Unchanged: the index did not change since the last poll that
	// processed it in full (conditional GET).
	Unchanged bool
	// Builds counts the builds of the index that the feed selects.
	Builds int
	// Candidates and Refused count the builds recorded by this poll.
	Candidates, Refused int
}

// Poll polls the feed once (leader only: recording needs the leader).
// A build that could not be fetched is retried at the next poll; the
// error then joins every such failure.
func (p *Poller) Poll(ctx context.Context) (Summary, error) {
	sum, err := p.poll(ctx)
	if err != nil {
		p.failures.Add(1)
		p.m.errors.WithLabelValues(p.cfg.Name).Inc()
		return sum, fmt.Errorf("feed %s: %w", p.cfg.Name, err)
	}
	p.polls.Add(1)
	p.m.polls.WithLabelValues(p.cfg.Name).Inc()
	return sum, nil
}

// Stats counts this poller's polls: completed and failed.
type Stats struct {
	Polls, Failures uint64
}

// Stats returns how often this poller polled.
func (p *Poller) Stats() Stats { return Stats{Polls: p.polls.Load(), Failures: p.failures.Load()} }

// build is one build a feed lists.
type build struct {
	key, pkg, version    string
	manifestURL, sigURL  string
	deb                  *Package
	debName, entryDigest string
}

func (p *Poller) poll(ctx context.Context) (Summary, error) {
	var (
		builds []build
		sum    Summary
		valid  validators
		err    error
	)
	switch p.cfg.Kind {
	case KindApt:
		builds, valid, err = p.aptBuilds(ctx)
	default:
		builds, valid, err = p.indexBuilds(ctx)
	}
	if err != nil {
		return sum, err
	}
	if valid.unchanged {
		sum.Unchanged = true
		return sum, nil
	}
	sum.Builds = len(builds)
	if !p.proposed.seeded {
		p.store.FSM().View(func(s *fsm.State) {
			for _, o := range s.FeedBuilds {
				if o.Feed == p.cfg.Name {
					p.proposed.add(refusalKey(o.Digest, o.Status))
				}
			}
		})
		p.proposed.seeded = true
	}
	var errs []error
	settled := true
	for _, b := range builds {
		if p.done[b.key] == b.entryDigest {
			continue
		}
		status, done, err := p.process(ctx, b)
		if err != nil {
			errs = append(errs, err)
			settled = false
			continue
		}
		switch status {
		case "":
		case fsm.ReleaseCandidate:
			sum.Candidates++
			p.m.candidates.WithLabelValues(p.cfg.Name).Inc()
		default:
			sum.Refused++
			p.m.refused.WithLabelValues(p.cfg.Name, status).Inc()
		}
		if done {
			p.done[b.key] = b.entryDigest
		} else {
			settled = false
		}
	}
	if err := errors.Join(errs...); err != nil {
		return sum, err
	}
	// Only an index whose every build is a release is skipped while it
	// does not change: a refused build is looked at again at every poll,
	// so that publishing its signature (or a fixed manifest) is enough.
	if settled {
		p.indexURL, p.etag, p.lastModified = valid.url, valid.etag, valid.lastModified
	} else {
		p.indexURL, p.etag, p.lastModified = "", "", ""
	}
	return sum, nil
}

// validators are an index response's conditional-GET validators.
type validators struct {
	url, etag, lastModified string
	unchanged               bool
}

// aptBuilds fetches the Packages index and lists the packages the feed
// selects.
func (p *Poller) aptBuilds(ctx context.Context) ([]build, validators, error) {
	dir := fmt.Sprintf("dists/%s/%s/binary-%s/Packages", p.cfg.Suite, p.cfg.Component, p.cfg.Arch)
	var (
		body  []byte
		valid validators
	)
	for _, ext := range []string{"", ".gz", ".xz"} {
		u := p.base.JoinPath(dir + ext).String()
		r, err := p.get(ctx, u, MaxPackagesSize, u == p.indexURL)
		if err != nil {
			return nil, valid, err
		}
		if r.notFound {
			continue
		}
		valid = validators{url: u, etag: r.etag, lastModified: r.lastModified, unchanged: r.notModified}
		if r.notModified {
			return nil, valid, nil
		}
		if body, err = decompress(r.body, ext); err != nil {
			return nil, valid, fmt.Errorf("%s: %w", u, err)
		}
		break
	}
	if body == nil {
		return nil, valid, fmt.Errorf("no Packages, Packages.gz or Packages.xz under %s", p.base.JoinPath(path.Dir(dir)).Redacted())
	}
	pkgs, err := ParsePackages(bytes.NewReader(body))
	if err != nil {
		return nil, valid, fmt.Errorf("%s: %w", valid.url, err)
	}
	var out []build
	seen := map[string]bool{}
	for i := range pkgs {
		pk := &pkgs[i]
		if ok, _ := path.Match(p.cfg.Package, pk.Name); !ok || seen[pk.Filename] {
			continue
		}
		seen[pk.Filename] = true
		m := p.base.JoinPath(pk.Filename + ".manifest.json").String()
		out = append(out, build{key: pk.Filename, pkg: pk.Name, version: pk.Version, manifestURL: m, sigURL: m + ".sig", deb: pk,
			debName: path.Base(pk.Filename), entryDigest: digest(pk.Filename, pk.Version, fmt.Sprint(pk.Size), pk.SHA256)})
	}
	return out, valid, nil
}

// indexBuilds fetches the manifest index.
func (p *Poller) indexBuilds(ctx context.Context) ([]build, validators, error) {
	u := p.base.String()
	r, err := p.get(ctx, u, MaxIndexSize, u == p.indexURL)
	if err != nil {
		return nil, validators{}, err
	}
	if r.notFound {
		return nil, validators{}, fmt.Errorf("%s: not found", p.base.Redacted())
	}
	valid := validators{url: u, etag: r.etag, lastModified: r.lastModified, unchanged: r.notModified}
	if r.notModified {
		return nil, valid, nil
	}
	entries, err := DecodeIndex(r.body, p.base)
	if err != nil {
		return nil, valid, fmt.Errorf("%s: %w", p.base.Redacted(), err)
	}
	out := make([]build, 0, len(entries))
	for _, e := range entries {
		out = append(out, build{key: e.URL, manifestURL: e.URL, sigURL: e.Sig, entryDigest: digest(e.URL, e.Sig)})
	}
	return out, valid, nil
}

// process fetches one build's manifest and signature, checks them and
// records the outcome unless the state holds it already. It returns the
// status recorded ("" when nothing was) and whether the build is settled:
// a release of exactly this manifest (not fetched again while its index
// entry stays).
func (p *Poller) process(ctx context.Context, b build) (status string, settled bool, err error) {
	rec, canon, err := p.verify(ctx, b)
	if err != nil {
		return "", false, err
	}
	isRelease := func() bool {
		ok := false
		if rec.Release != nil {
			p.store.FSM().View(func(s *fsm.State) {
				r := s.Releases[rec.Release.ID]
				ok = r != nil && bytes.Equal(r.Manifest, canon)
			})
		}
		return ok
	}
	// A refusal (or a conflict: another manifest under a known release
	// id) already proposed is not proposed again, even when the state no
	// longer holds its record (evicted); a record of the build with
	// another digest is replaced.
	known, recorded, refusal := false, false, ""
	p.store.FSM().View(func(s *fsm.State) {
		known = s.FeedBuildKnown(rec.Build, canon)
		recorded = slices.ContainsFunc(s.FeedBuilds, func(o fsm.FeedBuild) bool { return o.Feed == p.cfg.Name && o.Key == b.key })
		switch {
		case rec.Release == nil:
			refusal = refusalKey(rec.Build.Digest, rec.Build.Status)
		case s.Releases[rec.Release.ID] != nil && !bytes.Equal(s.Releases[rec.Release.ID].Manifest, canon):
			refusal = refusalKey(rec.Build.Digest, fsm.FeedConflict)
		}
	})
	if refusal != "" && (known || !recorded && p.proposed.has(refusal)) {
		p.proposed.add(refusal)
		return "", false, nil
	}
	if known {
		return "", isRelease(), nil
	}
	res, err := p.store.Apply(ctx, fsm.TypeFeedBuild, rec)
	if err != nil {
		return "", false, fmt.Errorf("record %s: %w", b.key, err)
	}
	if res.Err != nil {
		return "", false, fmt.Errorf("record %s: %s: %s", b.key, res.Err.Kind, res.Err.Value)
	}
	if refusal != "" {
		p.proposed.add(refusal)
	}
	switch {
	case res.Reason == fsm.ReleaseCandidate:
		p.log.Info("feed: new candidate release", "release", rec.Release.ID, "build", b.key, "key_id", rec.Release.KeyID)
	case res.Reason != "":
		p.log.Warn("feed: build refused", "build", b.key, "status", res.Reason, "reason", rec.Build.Reason)
	}
	return res.Reason, isRelease(), nil
}

// verify fetches and verifies one build: a record with a Release when it
// verifies, else with the refusal status. canon is the manifest's
// canonical encoding (nil when it did not decode). Only transport
// failures are errors (the build is retried at the next poll).
func (p *Poller) verify(ctx context.Context, b build) (rec fsm.RecordFeedBuild, canon []byte, err error) {
	rec.Build = fsm.FeedBuild{Feed: p.cfg.Name, Line: p.cfg.Line, Key: b.key, Package: b.pkg, Version: b.version, ManifestURL: b.manifestURL}
	refuse := func(status, format string, args ...any) (fsm.RecordFeedBuild, []byte, error) {
		rec.Build.Status, rec.Build.Reason = status, truncate(fmt.Sprintf(format, args...))
		rec.Release = nil
		return rec, canon, nil
	}
	mr, err := p.get(ctx, b.manifestURL, release.MaxManifestSize, false)
	switch {
	case errors.Is(err, errTooLarge):
		rec.Build.Digest = digest(b.entryDigest, "too large")
		return refuse(fsm.FeedInvalid, "manifest larger than %d bytes", release.MaxManifestSize)
	case err != nil:
		return rec, nil, err
	case mr.notFound:
		rec.Build.Digest = digest(b.entryDigest, "no manifest")
		return refuse(fsm.FeedUnsigned, "no release manifest published at %s", b.manifestURL)
	}
	sr, err := p.get(ctx, b.sigURL, maxSigSize, false)
	sigTooLarge := errors.Is(err, errTooLarge)
	if err != nil && !sigTooLarge {
		return rec, nil, err
	}
	sig := bytes.TrimSpace(sr.body)
	rec.Build.Digest = digest(b.entryDigest, string(mr.body), string(sig))
	m, err := release.Decode(mr.body)
	if err != nil {
		return refuse(fsm.FeedInvalid, "manifest %s: %v", b.manifestURL, err)
	}
	if !fsm.ValidName(m.ID) {
		return refuse(fsm.FeedInvalid, "release id %q: the coordinator takes ids of letters, digits, '.', '_', ':' and '-'", m.ID)
	}
	rec.Build.Release = m.ID
	if canon, err = m.Canonical(); err != nil {
		return refuse(fsm.FeedInvalid, "manifest %s: %v", b.manifestURL, err)
	}
	if sigTooLarge {
		rec.Build.Digest = digest(rec.Build.Digest, "signature too large")
		return refuse(fsm.FeedBadSignature, "signature %s larger than %d bytes", b.sigURL, maxSigSize)
	}
	if sr.notFound || len(sig) == 0 {
		return refuse(fsm.FeedUnsigned, "no signature published at %s", b.sigURL)
	}
	v, err := release.Open(mr.body, sig, p.cfg.Keys)
	if err != nil {
		return refuse(fsm.FeedBadSignature, "%v", err)
	}
	if m.Line != p.cfg.Line {
		return refuse(fsm.FeedMismatch, "manifest of line %s, the feed's is %s", m.Line, p.cfg.Line)
	}
	if b.deb != nil {
		if reason := matchDeb(m, b); reason != "" {
			return refuse(fsm.FeedMismatch, "%s", reason)
		}
	}
	rec.Release = &fsm.Release{ID: m.ID, Line: m.Line, KernelVersion: m.KernelVersion, UpstreamVersion: m.UpstreamVersion,
		Kind: string(m.Kind), Created: m.Created, KeyID: v.KeyID(), Manifest: canon, Signature: append([]byte(nil), sig...),
		Source: fsm.SourceFeed + p.cfg.Name}
	return rec, canon, nil
}

// matchDeb checks that manifest m describes b's .deb as the Packages
// index publishes it; it returns the mismatch or "".
func matchDeb(m release.Manifest, b build) string {
	if m.Kind != release.KindDeb {
		return fmt.Sprintf("manifest kind %s: an apt feed's builds are debs", m.Kind)
	}
	for _, a := range m.Artifacts {
		if a.Name != b.debName {
			continue
		}
		switch {
		case a.SHA256 != b.deb.SHA256:
			return fmt.Sprintf("artifact %s: manifest sha256 %s, the Packages index has %s", a.Name, a.SHA256, b.deb.SHA256)
		case a.Size != b.deb.Size:
			return fmt.Sprintf("artifact %s: manifest size %d, the Packages index has %d", a.Name, a.Size, b.deb.Size)
		}
		return ""
	}
	return fmt.Sprintf("the manifest lists no artifact %s (the published .deb)", b.debName)
}

// errTooLarge marks a response larger than its limit.
var errTooLarge = errors.New("response too large")

// response is a fetched document.
type response struct {
	body                  []byte
	notFound, notModified bool
	etag, lastModified    string
}

// get fetches u (at most limit bytes). conditional sends the validators
// of the last index processed. 404 and 410 are notFound; any other status
// but 200 (and 304 when conditional) is an error.
func (p *Poller) get(ctx context.Context, u string, limit int64, conditional bool) (response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return response{}, fmt.Errorf("GET %s: %w", u, err)
	}
	req.Header.Set("User-Agent", "kroll-coordinator feed")
	if conditional {
		if p.etag != "" {
			req.Header.Set("If-None-Match", p.etag)
		}
		if p.lastModified != "" {
			req.Header.Set("If-Modified-Since", p.lastModified)
		}
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return response{notFound: true}, nil
	case resp.StatusCode == http.StatusNotModified && conditional:
		return response{notModified: true, etag: p.etag, lastModified: p.lastModified}, nil
	case resp.StatusCode != http.StatusOK:
		return response{}, fmt.Errorf("GET %s: %s", u, resp.Status)
	case resp.ContentLength > limit:
		return response{}, fmt.Errorf("GET %s: %d bytes, at most %d: %w", u, resp.ContentLength, limit, errTooLarge)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return response{}, fmt.Errorf("GET %s: %w", u, err)
	}
	if int64(len(body)) > limit {
		return response{}, fmt.Errorf("GET %s: more than %d bytes: %w", u, limit, errTooLarge)
	}
	etag, lastModified := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	if lastModified != "" && !settledSince(lastModified, resp.Header.Get("Date")) {
		// Modified in the second of the response (or no Date to tell): a
		// change later in that second keeps the same Last-Modified (and
		// an ETag made of the modification time, nginx's), so a
		// conditional GET with them would miss it until the next change.
		// RFC 9110 8.8.2.2: such a validator is weak; not kept.
		etag, lastModified = "", ""
	}
	return response{body: body, etag: etag, lastModified: lastModified}, nil
}

// settledSince reports whether the Last-Modified time lm is at least one
// second older than the response's Date: only then is it a strong
// validator (RFC 9110 8.8.2.2).
func settledSince(lm, date string) bool {
	m, err := http.ParseTime(lm)
	if err != nil {
		return false
	}
	d, err := http.ParseTime(date)
	if err != nil {
		return false
	}
	return !d.Before(m.Add(time.Second))
}

// decompress decodes a Packages index by its extension ("", ".gz", ".xz"),
// at most MaxPackagesSize bytes.
func decompress(body []byte, ext string) ([]byte, error) {
	var r io.Reader
	switch ext {
	case "":
		return body, nil
	case ".gz":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		r = zr
	case ".xz":
		zr, err := xz.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		r = zr
	}
	out, err := io.ReadAll(io.LimitReader(r, MaxPackagesSize+1))
	if err != nil {
		return nil, fmt.Errorf("decompress Packages%s: %w", ext, err)
	}
	if len(out) > MaxPackagesSize {
		return nil, fmt.Errorf("Packages%s: larger than %d bytes decompressed", ext, MaxPackagesSize)
	}
	return out, nil
}

// digest is the hex SHA-256 of parts, each length-prefixed.
func digest(parts ...string) string {
	h := sha256.New()
	for _, s := range parts {
		fmt.Fprintf(h, "%d:%s", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// truncate bounds a reason.
func truncate(s string) string {
	if len(s) <= maxReason {
		return s
	}
	return strings.ToValidUTF8(s[:maxReason], "") + "…"
}
