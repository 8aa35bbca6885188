package main

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/signing"
)

// TestFeedConfig: [[feed]] tables become validated feed settings; every
// problem is a configuration error that names the feed and the key.
func TestFeedConfig(t *testing.T) {
	dir := t.TempDir()
	writeKey := func(name string, seed byte) string {
		pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize)).Public().(ed25519.PublicKey)
		pem, err := signing.MarshalPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	build, other := writeKey("build.pub", 1), writeKey("other.pub", 2)
	caFile := filepath.Join(dir, "notpem")
	if err := os.WriteFile(caFile, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	trusted := "[releases]\ntrusted_keys = [\"" + build + "\"]\n"
	apt := "[[feed]]\nname = \"weekly\"\nkind = \"apt\"\nurl = \"https://repo.example.net/kernel\"\nsuite = \"bookworm\"\ncomponent = \"main\"\narch = \"amd64\"\npackage = \"linux-image-6.12.*-cf*-amd64\"\nline = \"6.12\"\ninterval = \"15m\"\n"
	index := "[[feed]]\nname = \"lts\"\nkind = \"index\"\nurl = \"https://builds.example.net/6.18/index.json\"\nline = \"6.18\"\ninterval = \"1h\"\ntimeout = \"10s\"\nkeys = [\"" + build + "\"]\n"
	for _, tc := range []struct {
		name, toml string
		feeds      int
		wantErr    string
	}{
		{"none", trusted, 0, ""},
		{"apt and index", trusted + apt + index, 2, ""},
		{"no trusted release keys", apt, 0, "no trusted release keys"},
		{"key not trusted", trusted + strings.Replace(index, build, other, 1), 0, "not one of [releases] trusted_keys"},
		{"key file missing", trusted + strings.Replace(index, build, filepath.Join(dir, "nope.pub"), 1), 0, "feed[0].keys[0]"},
		{"bad url", trusted + strings.Replace(apt, "https://repo.example.net/kernel", "repo.example.net/kernel", 1), 0, "absolute http or https URL"},
		{"ftp url", trusted + strings.Replace(apt, "https://", "ftp://", 1), 0, "absolute http or https URL"},
		{"credentials in url", trusted + strings.Replace(apt, "https://", "https://u:p@", 1), 0, "credentials"},
		{"unknown line", trusted + strings.Replace(apt, "line = \"6.12\"", "line = \"six\"", 1), 0, "line \"six\""},
		{"missing line", trusted + strings.Replace(apt, "line = \"6.12\"\n", "", 1), 0, "line \"\""},
		{"zero interval", trusted + strings.Replace(apt, "\"15m\"", "\"0s\"", 1), 0, "must be positive"},
		{"missing interval", trusted + strings.Replace(apt, "interval = \"15m\"\n", "", 1), 0, "interval is required"},
		{"short interval", trusted + strings.Replace(apt, "\"15m\"", "\"10ms\"", 1), 0, "at least 1s"},
		{"negative timeout", trusted + strings.Replace(index, "\"10s\"", "\"-1s\"", 1), 0, "timeout"},
		{"unknown kind", trusted + strings.Replace(apt, "\"apt\"", "\"yum\"", 1), 0, "kind \"yum\""},
		{"apt without suite", trusted + strings.Replace(apt, "suite = \"bookworm\"\n", "", 1), 0, "suite \"\""},
		{"suite with a slash", trusted + strings.Replace(apt, "bookworm", "../x", 1), 0, "suite \"../x\""},
		{"bad glob", trusted + strings.Replace(apt, "linux-image-6.12.*-cf*-amd64", "linux-image-[", 1), 0, "package \"linux-image-[\""},
		{"index with suite", trusted + index + "suite = \"x\"\n", 0, "for apt feeds"},
		{"duplicate name", trusted + apt + apt, 0, "used twice"},
		{"bad name", trusted + strings.Replace(apt, "\"weekly\"", "\"week ly\"", 1), 0, "name \"week ly\""},
		{"ca file not PEM", trusted + apt + "ca_file = \"" + caFile + "\"\n", 0, "holds no PEM certificates"},
		{"unknown key", trusted + apt + "sute = \"x\"\n", 0, "sute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.toml")
			if err := os.WriteFile(path, []byte(tc.toml), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := loadConfig(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(s.feeds) != tc.feeds {
				t.Fatalf("%d feeds, want %d", len(s.feeds), tc.feeds)
			}
			for _, f := range s.feeds {
				if len(f.Keys) != 1 || f.Timeout == 0 {
					t.Errorf("feed %s: %d keys, timeout %s", f.Name, len(f.Keys), f.Timeout)
				}
			}
			if tc.feeds == 2 && (s.feeds[1].Timeout != 10*time.Second || s.feeds[0].Interval != 15*time.Minute) {
				t.Errorf("feeds %+v", s.feeds)
			}
		})
	}
}
