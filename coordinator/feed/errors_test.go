package feed_test

import (
	"bytes"
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/ulikunitz/xz"

	"github.com/kroll-dev/kroll/coordinator/feed"
	"github.com/kroll-dev/kroll/internal/testcoord"
)

// counter returns the value of a feed counter with the labels given.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	must(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// TestFeedErrors: transport failures fail the poll (counted, retried at
// the next one) and record nothing; a build whose manifest could not be
// fetched is looked at again; Packages.xz is read when it is the only
// index; a repository without any Packages index is an error that says
// where it looked; oversized documents are refused.
func TestFeedErrors(t *testing.T) {
	repo := newAptRepo(t)
	good, size, sum := repo.addDeb("linux-image-6.12.80-cf1-amd64", "6.12.80-1")
	repo.publish(good, manifest("6.12.80-cf1", "6.12.80-cf1-amd64", good, size, sum), buildKey)
	repo.index(true)
	// Only Packages.xz: compress the plain index, drop the others.
	dir := filepath.Join(repo.dir, "dists/stable/main/binary-amd64")
	plain, err := os.ReadFile(filepath.Join(dir, "Packages"))
	must(t, err)
	var xzBuf bytes.Buffer
	zw, err := xz.NewWriter(&xzBuf)
	must(t, err)
	_, err = zw.Write(plain)
	must(t, err)
	must(t, zw.Close())
	must(t, os.WriteFile(filepath.Join(dir, "Packages.xz"), xzBuf.Bytes(), 0o644))
	must(t, os.Remove(filepath.Join(dir, "Packages")))
	must(t, os.Remove(filepath.Join(dir, "Packages.gz")))

	var failManifest atomic.Bool
	failManifest.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failManifest.Load() && strings.HasSuffix(r.URL.Path, ".manifest.json") {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		repo.srv.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	c := testcoord.Start(t, testcoord.Options{ReleaseKeys: trusted()})
	reg := prometheus.NewRegistry()
	cfg := feed.Config{Name: "weekly", Kind: feed.KindApt, URL: srv.URL, Suite: "stable", Component: "main", Arch: "amd64",
		Package: "linux-image-*", Line: "6.12", Interval: time.Minute, Keys: trusted()}
	p, err := feed.New(cfg, c.Store, feed.Options{Metrics: feed.NewMetrics(reg)})
	must(t, err)
	ctx := context.Background()
	labels := map[string]string{"feed": "weekly"}

	_, err = p.Poll(ctx)
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("poll with the manifest unavailable: %v", err)
	}
	if releaseByID(t, c, "6.12.80-cf1") != nil || len(refusedByKey(c)) != 0 {
		t.Fatal("a transport failure recorded something")
	}
	if counter(t, reg, "kroll_feed_errors_total", labels) != 1 || counter(t, reg, "kroll_feed_polls_total", labels) != 0 {
		t.Fatal("the failed poll is not counted as an error")
	}
	failManifest.Store(false)
	sum2, err := p.Poll(ctx)
	if err != nil || sum2.Candidates != 1 || releaseByID(t, c, "6.12.80-cf1") == nil {
		t.Fatalf("poll after recovery: %+v, %v", sum2, err)
	}
	if counter(t, reg, "kroll_feed_candidates_total", labels) != 1 || counter(t, reg, "kroll_feed_polls_total", labels) != 1 {
		t.Fatal("candidate or poll not counted")
	}

	// No index at all.
	must(t, os.Remove(filepath.Join(dir, "Packages.xz")))
	if _, err := p.Poll(ctx); err == nil || !strings.Contains(err.Error(), "no Packages, Packages.gz or Packages.xz under "+srv.URL+"/dists/stable/main/binary-amd64") {
		t.Fatalf("poll without an index: %v", err)
	}

	// An oversized index document.
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte(" "), feed.MaxIndexSize+10))
	}))
	t.Cleanup(big.Close)
	pi, err := feed.New(feed.Config{Name: "big", Kind: feed.KindIndex, URL: big.URL + "/index.json", Line: "6.12", Interval: time.Minute, Keys: trusted()},
		c.Store, feed.Options{})
	must(t, err)
	if _, err := pi.Poll(ctx); err == nil || !strings.Contains(err.Error(), "bytes") {
		t.Fatalf("oversized index: %v", err)
	}
}

// TestFeedTLS: an https feed is reached with the CAs of ca_file, and
// refused without them (the system's roots do not know a private CA).
func TestFeedTLS(t *testing.T) {
	dir := t.TempDir()
	writeSigned(t, filepath.Join(dir, "a.json"), manifest("6.12.80-cf1", "6.12.80-cf1-amd64", "pool/x_1_amd64.deb", 10, strings.Repeat("ab", 32)), buildKey)
	must(t, os.WriteFile(filepath.Join(dir, "index.json"), []byte(`{"manifests":[{"url":"a.json"}]}`), 0o644))
	srv := httptest.NewTLSServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	must(t, os.WriteFile(caFile, pemCert(srv.Certificate().Raw), 0o644))
	c := testcoord.Start(t, testcoord.Options{ReleaseKeys: trusted()})
	for _, tc := range []struct {
		name, ca string
		wantErr  string
	}{
		{"without the CA", "", "certificate"},
		{"with the CA", caFile, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := feed.New(feed.Config{Name: "tls", Kind: feed.KindIndex, URL: srv.URL + "/index.json", Line: "6.12", Interval: time.Minute,
				CAFile: tc.ca, Keys: trusted()}, c.Store, feed.Options{})
			must(t, err)
			sum, err := p.Poll(context.Background())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || sum.Candidates != 1 {
				t.Fatalf("%+v, %v", sum, err)
			}
		})
	}
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestFeedIDTheStateRefuses: a signed manifest whose id the replicated
// state does not take ('+' is valid in a manifest, not in a release id)
// is recorded as invalid, not retried as a failure at every poll.
func TestFeedIDTheStateRefuses(t *testing.T) {
	dir := t.TempDir()
	writeSigned(t, filepath.Join(dir, "a.json"), manifest("6.12.80+cf1", "6.12.80-cf1-amd64", "pool/x_1_amd64.deb", 10, strings.Repeat("ab", 32)), buildKey)
	must(t, os.WriteFile(filepath.Join(dir, "index.json"), []byte(`{"manifests":[{"url":"a.json"}]}`), 0o644))
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	c := testcoord.Start(t, testcoord.Options{ReleaseKeys: trusted()})
	p, err := feed.New(feed.Config{Name: "weekly", Kind: feed.KindIndex, URL: srv.URL + "/index.json", Line: "6.12", Interval: time.Minute, Keys: trusted()},
		c.Store, feed.Options{})
	must(t, err)
	for i, want := range []feed.Summary{{Builds: 1, Refused: 1}, {Builds: 1}} {
		if got, err := p.Poll(context.Background()); err != nil || got != want {
			t.Fatalf("poll %d: %+v, %v; want %+v", i, got, err, want)
		}
	}
	if b := refusedByKey(c)[srv.URL+"/a.json"]; b.Status != "invalid" || !strings.Contains(b.Reason, `release id "6.12.80+cf1"`) {
		t.Fatalf("%+v", b)
	}
}
