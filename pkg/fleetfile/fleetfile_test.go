package fleetfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// write puts a fleet file into a new directory and returns its path.
func write(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fleet.toml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name string
		toml string
		// want is checked against the regions with dir replaced by the
		// fleet file's directory.
		want []Region
	}{
		{
			name: "minimal",
			toml: `[regions.eu]
coordinators = ["https://c1.eu.example:8001"]`,
			want: []Region{{Name: "eu", Coordinators: []string{"https://c1.eu.example:8001"}, Timeout: DefaultTimeout}},
		},
		{
			name: "defaults-applied-and-overridden-sorted",
			toml: `[defaults]
ca = "ca.pem"
token_file = "/etc/kroll/ops.token"
timeout = "20s"

[regions.us-east]
coordinators = ["https://c1.us.example:8001/", "https://c2.us.example:8001/kroll"]
cert = "us.pem"
key = "us-key.pem"
timeout = "5s"

[regions.eu]
coordinators = ["https://c1.eu.example:8001"]
ca = "/etc/kroll/eu-ca.pem"
`,
			want: []Region{
				{Name: "eu", Coordinators: []string{"https://c1.eu.example:8001"}, CA: "/etc/kroll/eu-ca.pem", TokenFile: "/etc/kroll/ops.token", Timeout: 20 * time.Second},
				{Name: "us-east", Coordinators: []string{"https://c1.us.example:8001", "https://c2.us.example:8001/kroll"},
					CA: "DIR/ca.pem", Cert: "DIR/us.pem", Key: "DIR/us-key.pem", Timeout: 5 * time.Second},
			},
		},
		{
			name: "loopback-http",
			toml: `[regions.lab]
coordinators = ["http://127.0.0.1:8001", "http://localhost:8002", "http://[::1]:8003"]`,
			want: []Region{{Name: "lab", Coordinators: []string{"http://127.0.0.1:8001", "http://localhost:8002", "http://[::1]:8003"}, Timeout: DefaultTimeout}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := write(t, tt.toml)
			f, err := Load(p)
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Dir(p)
			for i := range tt.want {
				for _, s := range []*string{&tt.want[i].CA, &tt.want[i].TokenFile, &tt.want[i].Cert, &tt.want[i].Key} {
					*s = strings.Replace(*s, "DIR", dir, 1)
				}
			}
			if len(f.Regions) != len(tt.want) {
				t.Fatalf("regions %+v, want %+v", f.Regions, tt.want)
			}
			for i, r := range f.Regions {
				w := tt.want[i]
				if r.Name != w.Name || !slices.Equal(r.Coordinators, w.Coordinators) || r.CA != w.CA || r.TokenFile != w.TokenFile ||
					r.Cert != w.Cert || r.Key != w.Key || r.Timeout != w.Timeout {
					t.Errorf("region %d:\n got %+v\nwant %+v", i, r, w)
				}
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	const eu = "[regions.eu]\ncoordinators = [\"https://c1.eu.example:8001\"]\n"
	tests := []struct {
		name string
		toml string
		want string // in the error, after "fleet file PATH"
	}{
		{"empty", "", ": no regions"},
		{"defaults-only", "[defaults]\ntimeout = \"5s\"\n", ": no regions"},
		{"unknown-key", "[regions.eu]\ncoordinators = [\"https://c1:8001\"]\ntokenfile = \"x\"\n", ": unknown keys: regions.eu.tokenfile"},
		{"unknown-table", eu + "[region.us]\ncoordinators = [\"https://c1:8001\"]\n", ": unknown keys: region"},
		{"unknown-default", "[defaults]\nurl = \"x\"\n" + eu, ": unknown keys: defaults.url"},
		{"duplicate-region", eu + "\n[regions.eu]\ncoordinators = [\"https://c2.eu.example:8001\"]\n", ":4: "},
		{"syntax-line", eu + "coordinators = [\n", ":3: "},
		{"wrong-type", "[regions.eu]\ncoordinators = \"https://c1:8001\"\n", ":2: "},
		{"no-coordinators-key", "[regions.eu]\ntoken_file = \"t\"\n", ": regions.eu.coordinators: no URLs"},
		{"empty-coordinators", "[regions.eu]\ncoordinators = []\n", ": regions.eu.coordinators: no URLs"},
		{"http-off-loopback", "[regions.eu]\ncoordinators = [\"https://c1:8001\", \"http://c2.eu.example:8001\"]\n", "regions.eu.coordinators[1]: \"http://c2.eu.example:8001\": clear-text http:// to a non-loopback host"},
		{"http-with-ca", "[regions.eu]\ncoordinators = [\"http://127.0.0.1:8001\"]\nca = \"ca.pem\"\n", "not https://"},
		{"scheme", "[regions.eu]\ncoordinators = [\"ftp://c1:8001\"]\n", "want https://"},
		{"no-host", "[regions.eu]\ncoordinators = [\"https://:8001\"]\n", "no host"},
		{"userinfo", "[regions.eu]\ncoordinators = [\"https://ops:secret@c1:8001\"]\n", "credentials in the URL"},
		{"query", "[regions.eu]\ncoordinators = [\"https://c1:8001/?x=1\"]\n", "query and fragment"},
		{"space", "[regions.eu]\ncoordinators = [\"https://c1:8001 \"]\n", "spaces or control characters"},
		{"same-url-twice", "[regions.eu]\ncoordinators = [\"https://c1:8001\", \"https://c1:8001/\"]\n", "https://c1:8001 is listed twice"},
		{"url-in-two-regions", eu + "[regions.us]\ncoordinators = [\"https://c1.eu.example:8001\"]\n", "is a coordinator of region eu too"},
		{"bad-name", "[regions.EU]\ncoordinators = [\"https://c1:8001\"]\n", "region \"EU\": want a lower-case DNS label"},
		{"comma-name", "[regions.\"eu,us\"]\ncoordinators = [\"https://c1:8001\"]\n", "want a lower-case DNS label"},
		{"cert-without-key", "[regions.eu]\ncoordinators = [\"https://c1:8001\"]\ncert = \"c.pem\"\n", "regions.eu: cert and key go together"},
		{"tilde", "[defaults]\ntoken_file = \"~/ops.token\"\n" + eu, "defaults.token_file: \"~/ops.token\": ~ is not expanded"},
		{"empty-path", "[regions.eu]\ncoordinators = [\"https://c1:8001\"]\nca = \"\"\n", "regions.eu.ca: empty path"},
		{"zero-timeout", "[defaults]\ntimeout = \"0s\"\n" + eu, "must be positive"},
		{"bad-timeout", "[regions.eu]\ncoordinators = [\"https://c1:8001\"]\ntimeout = \"soon\"\n", "soon"},
		{"several-errors-all-named", "[regions.eu]\ncoordinators = []\n[regions.us]\ncoordinators = [\"http://c1.us:8001\"]\n", "regions.eu.coordinators: no URLs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := write(t, tt.toml)
			_, err := Load(p)
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !strings.HasPrefix(err.Error(), "fleet file "+p) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want \"fleet file %s…%s…\"", err, p, tt.want)
			}
		})
	}
}

func TestLoadMissing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fleet.toml")
	_, err := Load(p)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), p) {
		t.Fatalf("Load of a missing file: %v, want ErrNotExist naming %s", err, p)
	}
}

func TestLoadWritableByOthers(t *testing.T) {
	for _, mode := range []os.FileMode{0o664, 0o646, 0o666} {
		p := write(t, "[regions.eu]\ncoordinators = [\"https://c1:8001\"]\n")
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Load(p)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("mode %04o lets others change where your credentials go", mode)) {
			t.Errorf("mode %04o: %v", mode, err)
		}
	}
}

func TestSelect(t *testing.T) {
	p := write(t, `[regions.us]
coordinators = ["https://c1.us:8001"]
[regions.eu]
coordinators = ["https://c1.eu:8001"]
[regions.ap]
coordinators = ["https://c1.ap:8001"]
`)
	f, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		names []string
		want  []string
		err   string
	}{
		{[]string{"us", "ap"}, []string{"ap", "us"}, ""},
		{[]string{"eu"}, []string{"eu"}, ""},
		{[]string{"eu", "mars"}, nil, `no region "mars" in ` + p + ` (regions: ap, eu, us)`},
		{[]string{"eu", "eu"}, nil, `region "eu" named twice`},
	}
	for _, tt := range tests {
		rs, err := f.Select(tt.names)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("Select(%v): %v, want %q", tt.names, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Select(%v): %v", tt.names, err)
		}
		var got []string
		for _, r := range rs {
			got = append(got, r.Name)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Select(%v) = %v, want %v", tt.names, got, tt.want)
		}
	}
}

func TestClientToken(t *testing.T) {
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		err     string
	}{
		{"ok", "operator-token-0123\n", 0o600, ""},
		{"ok-owner-only-read", "operator-token-0123", 0o400, ""},
		{"group-readable", "operator-token-0123\n", 0o640, "mode 0640 lets others read the token (run chmod 600"},
		{"world-readable", "operator-token-0123\n", 0o604, "mode 0604"},
		{"empty", "\n\n", 0o600, "empty"},
		{"two-tokens", "tok-a\ntok-b\n", 0o600, "want one token"},
		{"header-injection", "tok\r\nX-Evil: 1", 0o600, "want one token"},
		{"too-long", strings.Repeat("a", maxTokenSize+1), 0o600, "longer than 4096 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tok := filepath.Join(dir, "ops.token")
			if err := os.WriteFile(tok, []byte(tt.content), tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(tok, tt.mode); err != nil {
				t.Fatal(err)
			}
			r := Region{Name: "eu", Coordinators: []string{"https://c1.eu:8001", "https://c2.eu:8001"}, TokenFile: tok, Timeout: time.Second}
			c, err := r.Client()
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := c.BaseURLs(); !slices.Equal(got, r.Coordinators) {
					t.Errorf("client URLs %v, want %v", got, r.Coordinators)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.HasPrefix(err.Error(), "region eu: token_file") {
				t.Errorf("Client: %v, want region eu: token_file …%s…", err, tt.err)
			}
		})
	}
}

func TestClientFiles(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		r    Region
		err  string
	}{
		{"missing-token-file", Region{TokenFile: filepath.Join(dir, "nope")}, "token_file: open"},
		{"token-file-is-dir", Region{TokenFile: dir}, "not a regular file"},
		{"ca-not-pem", Region{CA: notPEM}, "no PEM certificates"},
		{"missing-cert", Region{Cert: filepath.Join(dir, "c.pem"), Key: filepath.Join(dir, "k.pem")}, "TLS client certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.r.Name, tt.r.Coordinators = "eu", []string{"https://c1.eu:8001"}
			_, err := tt.r.Client()
			if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.HasPrefix(err.Error(), "region eu: ") {
				t.Errorf("Client: %v, want region eu: …%s…", err, tt.err)
			}
		})
	}
}

// FuzzLoad: any file either loads into regions that keep the promises of
// Load, or is refused with an error naming the file; it never panics.
func FuzzLoad(f *testing.F) {
	f.Add("[defaults]\ntimeout = \"5s\"\n[regions.eu]\ncoordinators = [\"https://c1:8001\", \"http://127.0.0.1:1\"]\ntoken_file = \"t\"\n")
	f.Add("[regions.a]\ncoordinators = [\"https://x\"]\n[regions.b]\ncoordinators = [\"https://x\"]\n")
	f.Add("[regions.eu]\ncoordinators = []\n")
	f.Add("regions = 3")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, content string) {
		p := filepath.Join(dir, "fleet.toml")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		file, err := Load(p)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fleet file "+p) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if len(file.Regions) == 0 {
			t.Fatal("loaded without regions")
		}
		seen := map[string]bool{}
		for i, r := range file.Regions {
			if i > 0 && file.Regions[i-1].Name >= r.Name {
				t.Fatalf("regions not sorted or duplicate: %v", file.Names())
			}
			if !regionName.MatchString(r.Name) || len(r.Coordinators) == 0 || r.Timeout <= 0 || (r.Cert == "") != (r.Key == "") {
				t.Fatalf("region breaks Load's promises: %+v", r)
			}
			for _, u := range r.Coordinators {
				if seen[u] {
					t.Fatalf("coordinator %s twice", u)
				}
				seen[u] = true
				if strings.HasPrefix(u, "http://") && r.CA != "" {
					t.Fatalf("http:// with a CA: %+v", r)
				}
				if _, err := checkURL(u, false); err != nil {
					t.Fatalf("canonical URL %q refused: %v", u, err)
				}
			}
		}
	})
}
