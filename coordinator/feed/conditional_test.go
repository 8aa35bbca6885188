package feed_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/feed"
	"github.com/kroll-dev/kroll/internal/testcoord"
	"github.com/kroll-dev/kroll/pkg/release"
)

// TestConditionalGetSameSecond: a feed index rewritten within the second
// its previous version was fetched keeps its Last-Modified (HTTP dates
// have one-second resolution), so a conditional GET would be answered 304
// until the next change — a weekly repository would hide its build for a
// week. The poller keeps validators only when Last-Modified is at least a
// second older than the response's Date (RFC 9110 8.8.2.2), and then
// still skips an unchanged index.
func TestConditionalGetSameSecond(t *testing.T) {
	for _, tc := range []struct {
		name string
		// age is how much older Last-Modified is than Date.
		age time.Duration
		// content changes between the two polls.
		change bool
		want   feed.Summary
	}{
		{name: "changed in the second it was fetched", age: 0, change: true, want: feed.Summary{Builds: 1, Candidates: 1}},
		{name: "no Date to compare with", age: -1, change: true, want: feed.Summary{Builds: 1, Candidates: 1}},
		{name: "settled, unchanged", age: 2 * time.Second, want: feed.Summary{Unchanged: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			m := release.Manifest{ID: "6.12.80-cf1", Line: "6.12", KernelVersion: "6.12.80-cf1-amd64", Kind: release.KindDeb,
				Artifacts: []release.Artifact{{Name: "linux-image-6.12.80-cf1-amd64_1_amd64.deb", URL: "https://pkg.example.net/pool/linux-image-6.12.80-cf1-amd64_1_amd64.deb",
					Size: 1000, SHA256: strings.Repeat("cd", 32)}},
				Created: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
			writeSigned(t, filepath.Join(dir, "a.json"), m, buildKey)
			mod := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
			var (
				mu    sync.Mutex
				index = `{"manifests":[]}`
			)
			files := http.FileServer(http.Dir(dir))
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/index.json" {
					files.ServeHTTP(w, r)
					return
				}
				mu.Lock()
				body := index
				mu.Unlock()
				if tc.age >= 0 {
					w.Header().Set("Date", mod.Add(tc.age).Format(http.TimeFormat))
				} else {
					w.Header()["Date"] = nil // no Date header at all
				}
				http.ServeContent(w, r, "index.json", mod, bytes.NewReader([]byte(body)))
			}))
			defer srv.Close()
			c := testcoord.Start(t, testcoord.Options{ReleaseKeys: trusted(), TickInterval: time.Hour, LivenessInterval: time.Hour})
			p, err := feed.New(feed.Config{Name: "weekly", Kind: feed.KindIndex, URL: srv.URL + "/index.json", Line: "6.12",
				Interval: time.Minute, Keys: trusted()}, c.Store, feed.Options{})
			must(t, err)
			ctx := context.Background()
			if got, err := p.Poll(ctx); err != nil || got != (feed.Summary{}) {
				t.Fatalf("first poll: %+v, %v", got, err)
			}
			if tc.change {
				mu.Lock()
				index = `{"manifests":[{"url":"a.json"}]}`
				mu.Unlock()
			}
			got, err := p.Poll(ctx)
			if err != nil || got != tc.want {
				t.Fatalf("second poll: %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}
