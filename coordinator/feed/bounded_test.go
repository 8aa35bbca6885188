package feed_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/feed"
	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/internal/testcoord"
)

// TestFeedRefusedBeyondCap: a feed with more refused builds than the state
// keeps (fsm.MaxFeedBuilds) proposes each refusal once: a second poll
// proposes nothing and adds no event, although the state evicted the
// oldest records; a new leader's poller re-learns the records and proposes
// only the evicted ones, once.
func TestFeedRefusedBeyondCap(t *testing.T) {
	repo := newAptRepo(t) // a file server; the manifests are missing
	c := testcoord.Start(t, testcoord.Options{ReleaseKeys: trusted(), TickInterval: time.Hour, LivenessInterval: time.Hour})
	const extra = 10
	n := fsm.MaxFeedBuilds + extra
	var entries []string
	for i := range n {
		entries = append(entries, fmt.Sprintf(`{"url":"missing-%d.json"}`, i))
	}
	must(t, os.MkdirAll(filepath.Join(repo.dir, "kernel"), 0o755))
	must(t, os.WriteFile(filepath.Join(repo.dir, "kernel", "index.json"), []byte(`{"manifests":[`+strings.Join(entries, ",")+`]}`), 0o644))
	cfg := feed.Config{Name: "weekly", Kind: feed.KindIndex, URL: repo.srv.URL + "/kernel/index.json", Line: "6.12",
		Interval: time.Minute, Keys: trusted()}
	ctx := context.Background()
	st := &countingStore{Store: c.Store}
	log := func() (proposed uint64, events int) {
		c.Store.FSM().View(func(s *fsm.State) {
			for _, e := range s.Events {
				if e.Type == "feed_build_refused" {
					events++
				}
			}
		})
		return st.feedBuilds.Load(), events
	}

	var p *feed.Poller
	for _, step := range []struct {
		name    string
		refused int // refusals the poll records
	}{
		{"first poll", n},
		{"second poll", 0},
		{"third poll", 0},
		{"new leader", extra},
		{"new leader, second poll", 0},
	} {
		if step.name == "first poll" || step.name == "new leader" {
			var err error
			p, err = feed.New(cfg, st, feed.Options{})
			must(t, err)
		}
		i0, e0 := log()
		sum, err := p.Poll(ctx)
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		i1, e1 := log()
		if sum.Refused != step.refused || sum.Builds != n {
			t.Errorf("%s: %+v, want %d builds, %d refused", step.name, sum, n, step.refused)
		}
		if got := int(i1 - i0); got != step.refused {
			t.Errorf("%s: %d commands proposed, want %d", step.name, got, step.refused)
		}
		if got := e1 - e0; got != step.refused {
			t.Errorf("%s: %d new refusal events, want %d", step.name, got, step.refused)
		}
	}
	if got := len(refusedByKey(c)); got != fsm.MaxFeedBuilds {
		t.Errorf("%d refused builds listed, want %d", got, fsm.MaxFeedBuilds)
	}
}

// countingStore counts the feed_build commands proposed through it.
type countingStore struct {
	feed.Store
	feedBuilds atomic.Uint64
}

func (s *countingStore) Apply(ctx context.Context, typ fsm.Type, payload any) (fsm.Result, error) {
	if typ == fsm.TypeFeedBuild {
		s.feedBuilds.Add(1)
	}
	return s.Store.Apply(ctx, typ, payload)
}
