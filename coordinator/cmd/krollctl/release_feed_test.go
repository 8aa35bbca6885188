package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestReleaseListAll: --all lists the builds the feeds refused after the
// releases, in a table and in JSON.
func TestReleaseListAll(t *testing.T) {
	f, url := newFakeCoord(t)
	rels := `[{"id":"6.12.80-cf1","line":"6.12","kernel_version":"6.12.80-cf1-amd64","kind":"deb","created":"2026-11-01T00:00:00Z","added":"2026-11-02T00:00:00Z","key_id":"ab12","state":"candidate","source":"feed:weekly"}]`
	refused := `[{"feed":"weekly","line":"6.12","key":"pool/l/linux-image-6.12.81-cf1-amd64_1_amd64.deb","package":"linux-image-6.12.81-cf1-amd64","version":"1","manifest_url":"http://repo/x.manifest.json","release":"6.12.81-cf1","status":"unsigned","reason":"no signature published at http://repo/x.manifest.json.sig","seen":"2026-11-03T00:00:00Z"}]`
	for _, tc := range []struct {
		name     string
		args     []string
		refused  string
		contains []string
	}{
		{"table", []string{"release", "list", "--all"}, refused, []string{
			"6.12.80-cf1  6.12  6.12.80-cf1-amd64",
			"FEED    LINE  BUILD                            RELEASE      STATUS    SEEN                  REASON\n",
			"weekly  6.12  linux-image-6.12.81-cf1-amd64 1  6.12.81-cf1  unsigned  2026-11-03T00:00:00Z  no signature published at http://repo/x.manifest.json.sig\n",
		}},
		{"table, none refused", []string{"release", "list", "--all"}, `[]`, []string{"candidate", "\nno refused feed builds\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.serve("GET /api/v1/releases", reply{200, rels}, map[string]reply{"GET /api/v1/feeds/builds": {200, tc.refused}})
			code, stdout, stderr := krollctlEnv(t, nil, append(tc.args, "--coordinator", url)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			for _, want := range tc.contains {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout:\n%s\nwant it to contain %q", stdout, want)
				}
			}
		})
	}
	f.serve("GET /api/v1/releases", reply{200, rels}, map[string]reply{"GET /api/v1/feeds/builds": {200, refused}})
	code, stdout, stderr := krollctlEnv(t, nil, "release", "list", "--all", "-o", "json", "--coordinator", url)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got struct {
		Releases []map[string]any `json:"releases"`
		Refused  []map[string]any `json:"refused"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Releases) != 1 || got.Releases[0]["source"] != "feed:weekly" || len(got.Refused) != 1 || got.Refused[0]["status"] != "unsigned" {
		t.Fatalf("json %s", stdout)
	}
	// Without --all the feed builds are not asked for.
	f.serve("GET /api/v1/releases", reply{200, rels})
	if code, _, stderr := krollctlEnv(t, nil, "release", "list", "--coordinator", url); code != 0 || len(f.requests()) != 1 {
		t.Fatalf("exit %d (%s), %d requests", code, stderr, len(f.requests()))
	}
}
