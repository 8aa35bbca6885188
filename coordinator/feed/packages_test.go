package feed

import (
	"net/url"
	"strings"
	"testing"
)

const sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

const goodStanza = `Package: linux-image-6.12.80-cf1-amd64
Version: 6.12.80-1
Architecture: amd64
Maintainer: Kernel Team <k@example.net>
Filename: pool/main/l/linux/linux-image-6.12.80-cf1-amd64_6.12.80-1_amd64.deb
Size: 1234
SHA256: ` + sha + `
Description: Linux 6.12 for 64-bit PCs
 The Linux kernel 6.12 and modules.
 .
 More text.
`

func TestParsePackages(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     int    // packages
		err      string // substring of the error
	}{
		{"empty", "", 0, ""},
		{"one", goodStanza, 1, ""},
		{"two, extra blank lines", "\n\n" + goodStanza + "\n \n\n" + strings.Replace(goodStanza, "80", "81", -1), 2, ""},
		{"no trailing newline", strings.TrimSuffix(goodStanza, "\n"), 1, ""},
		{"missing sha256", strings.Replace(goodStanza, "SHA256: "+sha+"\n", "", 1), 0, "sha256 is required"},
		{"missing filename", strings.Replace(goodStanza, "Filename:", "X-Filename:", 1), 0, "filename is required"},
		{"uppercase sha", strings.Replace(goodStanza, sha, strings.ToUpper(sha), 1), 0, "64 lowercase hex"},
		{"short sha", strings.Replace(goodStanza, sha, sha[:63], 1), 0, "64 lowercase hex"},
		{"zero size", strings.Replace(goodStanza, "Size: 1234", "Size: 0", 1), 0, "positive decimal"},
		{"negative size", strings.Replace(goodStanza, "Size: 1234", "Size: -1", 1), 0, "positive decimal"},
		{"plus size", strings.Replace(goodStanza, "Size: 1234", "Size: +1", 1), 0, "positive decimal"},
		{"hex size", strings.Replace(goodStanza, "Size: 1234", "Size: 0x10", 1), 0, "positive decimal"},
		{"dotdot filename", strings.Replace(goodStanza, "pool/main", "pool/../..", 1), 0, `".." segments`},
		{"absolute filename", strings.Replace(goodStanza, "Filename: pool", "Filename: /pool", 1), 0, "relative path"},
		{"query in filename", strings.Replace(goodStanza, "_amd64.deb", "_amd64.deb?x=.deb", 1), 0, "one of ? # %"},
		{"not a deb", strings.Replace(goodStanza, "_amd64.deb", "_amd64.tar", 1), 0, "not a .deb"},
		{"bad package name", strings.Replace(goodStanza, "Package: linux", "Package: Linux", 1), 0, "not a Debian package name"},
		{"bad version", strings.Replace(goodStanza, "Version: 6.12.80-1", "Version: 6.12 80", 1), 0, "not a Debian version"},
		{"duplicate field", strings.Replace(goodStanza, "Size: 1234", "Size: 1234\nsize: 1234", 1), 0, "repeated"},
		{"continuation first", " oops\n" + goodStanza, 0, "continuation line without a field"},
		{"no colon", strings.Replace(goodStanza, "Size: 1234", "Size 1234", 1), 0, `not a "Field: value"`},
		{"comment", "# hi\n" + goodStanza, 0, "comments"},
		{"control character", strings.Replace(goodStanza, "Linux 6.12", "Linux\x00", 1), 0, "control characters"},
		{"crlf line ends", strings.ReplaceAll(goodStanza, "\n", "\r\n"), 1, ""},
		{"carriage return inside a line", strings.Replace(goodStanza, "Linux 6.12", "Linux\r6.12", 1), 0, "control characters"},
		{"invalid utf-8", strings.Replace(goodStanza, "Linux 6.12", "Linux \xff", 1), 0, "invalid UTF-8"},
		{"long line", "Package: a\nDescription: " + strings.Repeat("x", maxLine) + "\n", 0, "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkgs, err := ParsePackages(strings.NewReader(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || len(pkgs) != tc.want {
				t.Fatalf("%d packages, %v; want %d", len(pkgs), err, tc.want)
			}
		})
	}
	pkgs, err := ParsePackages(strings.NewReader(goodStanza))
	if err != nil {
		t.Fatal(err)
	}
	p := pkgs[0]
	if p.Name != "linux-image-6.12.80-cf1-amd64" || p.Version != "6.12.80-1" || p.Architecture != "amd64" || p.Size != 1234 || p.SHA256 != sha ||
		p.Filename != "pool/main/l/linux/linux-image-6.12.80-cf1-amd64_6.12.80-1_amd64.deb" || p.Line != 1 {
		t.Fatalf("%+v", p)
	}
}

func TestParsePackagesTooLarge(t *testing.T) {
	big := strings.Repeat(goodStanza+"\n", MaxPackagesSize/len(goodStanza)+2)
	if _, err := ParsePackages(strings.NewReader(big)); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err %v", err)
	}
}

func TestDecodeIndex(t *testing.T) {
	base, _ := url.Parse("https://builds.example.net/kernel/index.json")
	for _, tc := range []struct {
		name, in string
		want     []IndexEntry
		err      string
	}{
		{"empty list", `{"manifests":[]}`, []IndexEntry{}, ""},
		{"relative and absolute", `{"manifests":[{"url":"6.12.80.json"},{"url":"/other/a.json","sig":"sigs/a.sig"},{"url":"http://mirror.example.net/b.json"}]}`,
			[]IndexEntry{
				{"https://builds.example.net/kernel/6.12.80.json", "https://builds.example.net/kernel/6.12.80.json.sig"},
				{"https://builds.example.net/other/a.json", "https://builds.example.net/kernel/sigs/a.sig"},
				{"http://mirror.example.net/b.json", "http://mirror.example.net/b.json.sig"},
			}, ""},
		{"missing manifests", `{}`, nil, `"manifests" is required`},
		{"unknown field", `{"manifests":[],"x":1}`, nil, "unknown"},
		{"unknown entry field", `{"manifests":[{"url":"a.json","sha":"x"}]}`, nil, "unknown"},
		{"duplicate key", `{"manifests":[],"manifests":[]}`, nil, "duplicate"},
		{"trailing data", `{"manifests":[]} {}`, nil, ""},
		{"missing url", `{"manifests":[{"sig":"a.sig"}]}`, nil, "url: required"},
		{"ftp url", `{"manifests":[{"url":"ftp://x/a.json"}]}`, nil, "http or https"},
		{"file url", `{"manifests":[{"url":"file:///etc/passwd"}]}`, nil, "http or https"},
		{"credentials", `{"manifests":[{"url":"https://u:p@x/a.json"}]}`, nil, "credentials"},
		{"listed twice", `{"manifests":[{"url":"a.json"},{"url":"./a.json"}]}`, nil, "listed twice"},
		{"space", `{"manifests":[{"url":"a b.json"}]}`, nil, "spaces"},
		{"not an object", `[]`, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeIndex([]byte(tc.in), base)
			if tc.want == nil {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("%d: %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func FuzzParsePackages(f *testing.F) {
	f.Add([]byte(goodStanza))
	f.Add([]byte(goodStanza + "\n" + goodStanza))
	f.Add([]byte("Package: a\n continuation\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := ParsePackages(strings.NewReader(string(data)))
		if err != nil {
			return
		}
		for _, p := range pkgs {
			// Everything accepted is safe to use as a path and a name.
			if p.Size <= 0 || len(p.SHA256) != 64 || checkFilename(p.Filename) != nil || !debPackageName.MatchString(p.Name) {
				t.Fatalf("accepted %+v", p)
			}
		}
	})
}

func FuzzDecodeIndex(f *testing.F) {
	f.Add([]byte(`{"manifests":[{"url":"a.json","sig":"a.json.sig"}]}`))
	f.Add([]byte(`{"manifests":[{"url":"https://x.example/a.json"}]}`))
	f.Add([]byte(`{"manifests":[]}`))
	base, _ := url.Parse("https://builds.example.net/kernel/index.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := DecodeIndex(data, base)
		if err != nil {
			return
		}
		for _, e := range entries {
			for _, s := range []string{e.URL, e.Sig} {
				u, err := url.Parse(s)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
					t.Fatalf("accepted %q", s)
				}
			}
		}
	})
}
