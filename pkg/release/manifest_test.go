package release

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/kversion"
	"github.com/kroll-dev/kroll/pkg/signing"
)

const (
	hashA = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	hashB = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

const exampleJSON = `{
  "id": "6.12.117-kroll.1",
  "line": "6.12",
  "kernel_version": "6.12.117+deb12-amd64",
  "kind": "deb",
  "artifacts": [
    {"name": "linux-image-6.12.117+deb12-amd64_6.12.117-1~deb12u1_amd64.deb",
     "url": "https://pkg.example.net/kernel/linux-image-6.12.117%2Bdeb12-amd64_6.12.117-1~deb12u1_amd64.deb",
     "size": 71234567,
     "sha256": "` + hashA + `"}
  ],
  "created": "2026-05-04T09:30:00Z",
  "notes": "CVE-2026-31431 fix"
}
`

func validManifest() Manifest {
	return Manifest{
		ID:            "6.12.117-kroll.1",
		Line:          "6.12",
		KernelVersion: "6.12.117+deb12-amd64",
		Kind:          KindDeb,
		Artifacts: []Artifact{
			{Name: "linux-image.deb", URL: "https://pkg.example.net/k/linux-image.deb", Size: 1000, SHA256: hashA},
			{Name: "linux-modules.deb", URL: "http://mirror.example.net/k/linux-modules.deb", Size: 2000, SHA256: hashB},
		},
		Created: time.Date(2026, 5, 4, 9, 30, 0, 0, time.UTC),
		Notes:   "weekly build\nwith the fix",
	}
}

func testKey(seed byte) (ed25519.PublicKey, ed25519.PrivateKey) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	return priv.Public().(ed25519.PublicKey), priv
}

func TestDecodeExample(t *testing.T) {
	m, err := Decode([]byte(exampleJSON))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if m.ID != "6.12.117-kroll.1" || m.Line != "6.12" || m.KernelVersion != "6.12.117+deb12-amd64" ||
		m.Kind != KindDeb || len(m.Artifacts) != 1 || m.Artifacts[0].Size != 71234567 ||
		m.Artifacts[0].SHA256 != hashA || !m.Created.Equal(time.Date(2026, 5, 4, 9, 30, 0, 0, time.UTC)) ||
		m.Notes != "CVE-2026-31431 fix" || m.UpstreamVersion != "" {
		t.Errorf("Decode = %+v", m)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Manifest)
		want   string // "" = valid; else the one expected "field: message" prefix
	}{
		{"valid", func(*Manifest) {}, ""},
		{"bundle kind", func(m *Manifest) { m.Kind = KindBundle }, ""},
		{"no notes", func(m *Manifest) { m.Notes = "" }, ""},
		{"id missing", func(m *Manifest) { m.ID = "" }, "id: required"},
		{"id upper case", func(m *Manifest) { m.ID = "Kroll" }, "id: must consist of [a-z0-9._+-]"},
		{"id with slash", func(m *Manifest) { m.ID = "a/b" }, "id: must consist of"},
		{"id leading dot", func(m *Manifest) { m.ID = ".hidden" }, "id: must consist of"},
		{"id dot dot", func(m *Manifest) { m.ID = ".." }, "id: must consist of"},
		{"id at max length", func(m *Manifest) { m.ID = strings.Repeat("a", MaxIDLen) }, ""},
		{"id too long", func(m *Manifest) { m.ID = strings.Repeat("a", MaxIDLen+1) }, "id: must be at most 128 characters"},
		{"line missing", func(m *Manifest) { m.Line = "" }, "line: required"},
		{"line without minor", func(m *Manifest) { m.Line = "6" }, `line: must be a kernel line MAJOR.MINOR such as 6.12, not "6"`},
		{"line with patch", func(m *Manifest) { m.Line = "6.12.1" }, "line: must be a kernel line"},
		{"line leading zero", func(m *Manifest) { m.Line = "6.012" }, "line: must be a kernel line"},
		{"line with v", func(m *Manifest) { m.Line = "v6.12" }, "line: must be a kernel line"},
		{"kernel_version missing", func(m *Manifest) { m.KernelVersion = "" }, "kernel_version: required"},
		{"kernel_version garbage", func(m *Manifest) { m.KernelVersion = "latest" }, "kernel_version: "},
		{"kernel_version of other line", func(m *Manifest) { m.KernelVersion = "6.18.22" }, "kernel_version: 6.18.22 is not of line 6.12"},
		{"kernel_version upstream", func(m *Manifest) { m.KernelVersion = "6.12.85" }, ""},
		{"kernel_version with local suffix", func(m *Manifest) { m.KernelVersion = "6.12.85-kroll-2026.5.1" }, ""},
		{"debian ABI name needs upstream_version", func(m *Manifest) {
			m.Line, m.KernelVersion = "6.1", "6.1.0-56-amd64"
		}, "upstream_version: required: kernel_version 6.1.0-56-amd64 does not tell its upstream version"},
		{"debian ABI name with upstream_version", func(m *Manifest) {
			m.Line, m.KernelVersion, m.UpstreamVersion = "6.1", "6.1.0-56-amd64", "6.1.192"
		}, ""},
		{"upstream_version agrees", func(m *Manifest) { m.UpstreamVersion = "6.12.117" }, ""},
		{"upstream_version contradicts", func(m *Manifest) { m.UpstreamVersion = "6.12.116" }, "upstream_version: 6.12.116 contradicts kernel_version 6.12.117+deb12-amd64 (upstream 6.12.117)"},
		{"upstream_version of other line", func(m *Manifest) {
			m.Line, m.KernelVersion, m.UpstreamVersion = "6.1", "6.1.0-56-amd64", "6.12.192"
		}, "upstream_version: 6.12.192 is not of line 6.1"},
		{"upstream_version garbage", func(m *Manifest) { m.UpstreamVersion = "new" }, "upstream_version: "},
		{"upstream_version debian name", func(m *Manifest) { m.UpstreamVersion = "6.12.117+deb12-amd64" }, `upstream_version: must be a plain upstream version such as 6.1.192, not "6.12.117+deb12-amd64"`},
		{"upstream_version with suffix", func(m *Manifest) { m.UpstreamVersion = "6.12.117-x" }, "upstream_version: must be a plain upstream version"},
		{"kind missing", func(m *Manifest) { m.Kind = "" }, "kind: required"},
		{"kind unknown", func(m *Manifest) { m.Kind = "rpm" }, `kind: must be "deb" or "bundle", not "rpm"`},
		{"no artifacts", func(m *Manifest) { m.Artifacts = nil }, "artifacts: must not be empty"},
		{"too many artifacts", func(m *Manifest) {
			m.Artifacts = nil
			for i := 0; i <= MaxArtifacts; i++ {
				m.Artifacts = append(m.Artifacts, Artifact{Name: "a" + strings.Repeat("x", i), URL: "https://h/a", Size: 1, SHA256: hashA})
			}
		}, "artifacts: must have at most 64 entries"},
		{"name missing", func(m *Manifest) { m.Artifacts[1].Name = "" }, "artifacts[1].name: required"},
		{"name with directory", func(m *Manifest) { m.Artifacts[1].Name = "boot/vmlinuz" }, `artifacts[1].name: must be a plain file name`},
		{"name with backslash", func(m *Manifest) { m.Artifacts[1].Name = `a\b` }, `artifacts[1].name: must be a plain file name`},
		{"name dot dot", func(m *Manifest) { m.Artifacts[1].Name = ".." }, `artifacts[1].name: must be a plain file name`},
		{"name hidden", func(m *Manifest) { m.Artifacts[1].Name = ".vmlinuz" }, `artifacts[1].name: must be a plain file name`},
		{"name with space", func(m *Manifest) { m.Artifacts[1].Name = "a b" }, `artifacts[1].name: must be a plain file name`},
		{"name too long", func(m *Manifest) { m.Artifacts[1].Name = strings.Repeat("a", 256) }, "artifacts[1].name: must be at most 255 characters"},
		{"name duplicate", func(m *Manifest) { m.Artifacts[1].Name = m.Artifacts[0].Name }, `artifacts[1].name: duplicate of artifacts[0].name "linux-image.deb"`},
		{"url missing", func(m *Manifest) { m.Artifacts[0].URL = "" }, "artifacts[0].url: required"},
		{"url ftp", func(m *Manifest) { m.Artifacts[0].URL = "ftp://h/a" }, `artifacts[0].url: scheme must be http or https, not "ftp"`},
		{"url file", func(m *Manifest) { m.Artifacts[0].URL = "file:///tmp/a" }, `artifacts[0].url: scheme must be http or https, not "file"`},
		{"url relative", func(m *Manifest) { m.Artifacts[0].URL = "/k/a.deb" }, `artifacts[0].url: scheme must be http or https, not ""`},
		{"url without host", func(m *Manifest) { m.Artifacts[0].URL = "https:///a.deb" }, "artifacts[0].url: must have a host"},
		{"url with port only", func(m *Manifest) { m.Artifacts[0].URL = "https://:443/a.deb" }, "artifacts[0].url: must have a host"},
		{"url with credentials", func(m *Manifest) { m.Artifacts[0].URL = "https://user:pw@h/a.deb" }, "artifacts[0].url: must not contain credentials"},
		{"url with fragment", func(m *Manifest) { m.Artifacts[0].URL = "https://h/a.deb#x" }, "artifacts[0].url: must not have a fragment"},
		{"url with space", func(m *Manifest) { m.Artifacts[0].URL = "https://h/a b.deb" }, "artifacts[0].url: must not contain spaces"},
		{"url with non-ASCII", func(m *Manifest) { m.Artifacts[0].URL = "https://h/ä.deb" }, "artifacts[0].url: must not contain spaces, control or non-ASCII"},
		{"url malformed", func(m *Manifest) { m.Artifacts[0].URL = "https://h/%zz" }, "artifacts[0].url: not a valid URL"},
		{"url upper case scheme", func(m *Manifest) { m.Artifacts[0].URL = "HTTPS://h/a.deb" }, ""},
		{"url with query and port", func(m *Manifest) { m.Artifacts[0].URL = "https://h:8443/a.deb?token=x" }, ""},
		{"url too long", func(m *Manifest) { m.Artifacts[0].URL = "https://h/" + strings.Repeat("a", MaxURLLen) }, "artifacts[0].url: must be at most 2048 characters"},
		{"size zero", func(m *Manifest) { m.Artifacts[0].Size = 0 }, "artifacts[0].size: must be > 0"},
		{"size negative", func(m *Manifest) { m.Artifacts[0].Size = -5 }, "artifacts[0].size: must be > 0"},
		{"size at max", func(m *Manifest) { m.Artifacts[0].Size = MaxArtifactSize }, ""},
		{"size too big", func(m *Manifest) { m.Artifacts[0].Size = MaxArtifactSize + 1 }, "artifacts[0].size: must be at most 2147483648 bytes (2 GiB)"},
		{"sha256 missing", func(m *Manifest) { m.Artifacts[1].SHA256 = "" }, "artifacts[1].sha256: required"},
		{"sha256 upper case", func(m *Manifest) { m.Artifacts[1].SHA256 = strings.ToUpper(hashA) }, "artifacts[1].sha256: must be 64 lowercase hex characters"},
		{"sha256 short", func(m *Manifest) { m.Artifacts[1].SHA256 = hashA[:63] }, "artifacts[1].sha256: must be 64 lowercase hex characters"},
		{"sha256 not hex", func(m *Manifest) { m.Artifacts[1].SHA256 = "g" + hashA[1:] }, "artifacts[1].sha256: must be 64 lowercase hex characters"},
		{"created missing", func(m *Manifest) { m.Created = time.Time{} }, "created: required"},
		{"created too old", func(m *Manifest) { m.Created = time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC) }, "created: 1999-12-31T00:00:00Z is out of range"},
		{"created in another zone", func(m *Manifest) { m.Created = m.Created.In(time.FixedZone("CEST", 2*3600)) }, ""},
		{"notes at max", func(m *Manifest) { m.Notes = strings.Repeat("n", MaxNotesLen) }, ""},
		{"notes too long", func(m *Manifest) { m.Notes = strings.Repeat("n", MaxNotesLen+1) }, "notes: must be at most 4096 bytes"},
		{"notes with escape", func(m *Manifest) { m.Notes = "red \x1b[31m" }, "notes: must be valid UTF-8 without control or format characters"},
		{"notes with bidi override", func(m *Manifest) { m.Notes = "abc\u202edef" }, "notes: must be valid UTF-8"},
		{"notes invalid UTF-8", func(m *Manifest) { m.Notes = "\xff" }, "notes: must be valid UTF-8"},
		{"notes with tab and unicode", func(m *Manifest) { m.Notes = "fix\tfür CVE ✓" }, ""},
		{"cmdline changes", func(m *Manifest) {
			m.CmdlineAdd, m.CmdlineRemove = []string{"mitigations=auto", "lsm=lockdown,yama,bpf"}, []string{"mitigations", "nosmt", "lsm"}
		}, ""},
		{"no initrd", func(m *Manifest) { m.NoInitrd = true }, ""},
		{"cmdline_add with space", func(m *Manifest) { m.CmdlineAdd = []string{"nosmt", "a b"} }, `cmdline_add[1]: "a b": must be printable ASCII without spaces`},
		{"cmdline_add with quote", func(m *Manifest) { m.CmdlineAdd = []string{`dyndbg="x"`} }, "cmdline_add[0]: "},
		{"cmdline_add with newline", func(m *Manifest) { m.CmdlineAdd = []string{"a\nb"} }, "cmdline_add[0]: "},
		{"cmdline_add empty", func(m *Manifest) { m.CmdlineAdd = []string{""} }, "cmdline_add[0]: must not be empty"},
		{"cmdline_add one-shot", func(m *Manifest) { m.CmdlineAdd = []string{"systemd.unit=rescue.target"} }, "cmdline_add[0]: \"systemd.unit=rescue.target\": systemd.unit is a one-shot parameter"},
		{"cmdline_add init args", func(m *Manifest) { m.CmdlineAdd = []string{"--"} }, "cmdline_add[0]: "},
		{"cmdline_add too long", func(m *Manifest) { m.CmdlineAdd = []string{"a=" + strings.Repeat("x", 300)} }, "cmdline_add[0]: must be at most 256 bytes"},
		{"cmdline_add duplicate", func(m *Manifest) { m.CmdlineAdd = []string{"nosmt", "nosmt"} }, `cmdline_add[1]: duplicate of cmdline_add[0] "nosmt"`},
		{"cmdline_add too many", func(m *Manifest) {
			m.CmdlineAdd = nil
			for i := 0; i <= 32; i++ {
				m.CmdlineAdd = append(m.CmdlineAdd, "p"+strconv.Itoa(i))
			}
		}, "cmdline_add: must have at most 32 entries"},
		{"cmdline_remove with value", func(m *Manifest) { m.CmdlineRemove = []string{"mitigations=off"} }, "cmdline_remove[0]: \"mitigations=off\": give the parameter's name only"},
		{"cmdline_remove one-shot", func(m *Manifest) { m.CmdlineRemove = []string{"BOOT_IMAGE"} }, "cmdline_remove[0]: \"BOOT_IMAGE\": a one-shot parameter"},
		{"cmdline_remove duplicate spelling", func(m *Manifest) { m.CmdlineRemove = []string{"page_poison", "page-poison"} }, `cmdline_remove[1]: duplicate of cmdline_remove[0] "page_poison"`},
		{"cmdline_remove too many", func(m *Manifest) {
			m.CmdlineRemove = nil
			for i := 0; i <= 32; i++ {
				m.CmdlineRemove = append(m.CmdlineRemove, "p"+strconv.Itoa(i))
			}
		}, "cmdline_remove: must have at most 32 entries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validManifest()
			tt.mutate(&m)
			err := m.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate = %v, want a *ValidationError", err)
			}
			if len(ve.Errors) != 1 {
				t.Fatalf("Validate found %d problems, want 1: %v", len(ve.Errors), err)
			}
			if got := ve.Errors[0].Error(); !strings.HasPrefix(got, tt.want) {
				t.Errorf("problem %q, want prefix %q", got, tt.want)
			}
		})
	}
}

func TestValidationErrorListsAll(t *testing.T) {
	m := validManifest()
	m.ID = ""
	m.KernelVersion = "bogus"
	m.Artifacts[0].SHA256 = "x"
	m.Artifacts[1].URL = "ftp://x/y"
	m.Created = time.Time{}
	err := m.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Validate = %v", err)
	}
	var fields []string
	for _, fe := range ve.Errors {
		fields = append(fields, fe.Field)
	}
	want := []string{"id", "kernel_version", "artifacts[0].sha256", "artifacts[1].url", "created"}
	if strings.Join(fields, ",") != strings.Join(want, ",") {
		t.Errorf("fields = %v, want %v", fields, want)
	}
	if !errors.Is(err, kversion.ErrUnknownFormat) {
		t.Error("the kernel_version problem does not wrap kversion.ErrUnknownFormat")
	}
	var fe FieldError
	if !errors.As(err, &fe) || fe.Field != "id" {
		t.Errorf("errors.As(FieldError) = %+v", fe)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "invalid release manifest: id: required; kernel_version: ") ||
		!strings.Contains(msg, "; artifacts[0].sha256: must be 64 lowercase hex characters; artifacts[1].url: ") {
		t.Errorf("Error() = %q", msg)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"empty", ``, "unexpected end of JSON input"},
		{"not an object", `[]`, "must be a JSON object"},
		{"unknown field", strings.Replace(exampleJSON, `"kind"`, `"signature": "x", "kind"`, 1), "signature: unknown field"},
		{"unknown artifact field", strings.Replace(exampleJSON, `"size"`, `"md5": "x", "size"`, 1), "artifacts[0].md5: unknown field"},
		{"duplicate field", strings.Replace(exampleJSON, `"kind": "deb"`, `"kind": "deb", "kind": "bundle"`, 1), "kind: duplicate key"},
		{"case-folded field", strings.Replace(exampleJSON, `"kind"`, `"Kind"`, 1), "Kind: unknown field"},
		{"trailing data", exampleJSON + `{}`, "unexpected data after JSON value"},
		{"too large", exampleJSON + strings.Repeat(" ", MaxManifestSize), "too large"},
		{"size as string", strings.Replace(exampleJSON, `71234567`, `"71234567"`, 1), "artifacts.size: must be an integer in range, not a JSON string"},
		{"size as float", strings.Replace(exampleJSON, `71234567`, `7.5`, 1), "artifacts.size: must be an integer"},
		{"created not RFC 3339", strings.Replace(exampleJSON, `2026-05-04T09:30:00Z`, `2026-05-04`, 1), `created: must be an RFC 3339 time such as 2026-05-04T09:30:00Z, not "2026-05-04"`},
		{"created without zone", strings.Replace(exampleJSON, `2026-05-04T09:30:00Z`, `2026-05-04T09:30:00`, 1), "created: must be an RFC 3339 time"},
		{"created as number", strings.Replace(exampleJSON, `"2026-05-04T09:30:00Z"`, `1746351000`, 1), "created: must be a string"},
		{"invalid and bad created", strings.Replace(strings.Replace(exampleJSON, `2026-05-04T09:30:00Z`, `soon`, 1), `"deb"`, `"rpm"`, 1), `invalid release manifest: kind: must be "deb" or "bundle", not "rpm"; created: must be an RFC 3339 time`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Decode error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestCanonical(t *testing.T) {
	m, err := Decode([]byte(exampleJSON))
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"6.12.117-kroll.1","line":"6.12","kernel_version":"6.12.117+deb12-amd64","kind":"deb",` +
		`"artifacts":[{"name":"linux-image-6.12.117+deb12-amd64_6.12.117-1~deb12u1_amd64.deb",` +
		`"url":"https://pkg.example.net/kernel/linux-image-6.12.117%2Bdeb12-amd64_6.12.117-1~deb12u1_amd64.deb",` +
		`"size":71234567,"sha256":"` + hashA + `"}],"created":"2026-05-04T09:30:00Z","notes":"CVE-2026-31431 fix"}`
	if string(got) != want {
		t.Errorf("Canonical =\n%s\nwant\n%s", got, want)
	}

	// The same manifest written differently: other field order, spacing,
	// time zone, fractional zero seconds, escaped characters.
	reformatted := `{"notes":"CVE-2026-31431 fix","created":"2026-05-04T11:30:00.000+02:00",
		"artifacts":[{"sha256":"` + hashA + `","size":71234567,
		"url":"https://pkg.example.net/kernel/linux-image-6.12.117%2Bdeb12-amd64_6.12.117-1~deb12u1_amd64.deb",
		"name":"linux-image-6.12.117\u002bdeb12-amd64_6.12.117-1~deb12u1_amd64.deb"}],
		"kind":"deb","kernel_version":"6.12.117+deb12-amd64","line":"6.12","id":"6.12.117-kroll.1"}`
	m2, err := Decode([]byte(reformatted))
	if err != nil {
		t.Fatal(err)
	}
	got2, err := m2.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, got2) {
		t.Errorf("reformatted manifest has another canonical encoding:\n%s\n%s", got, got2)
	}

	// The canonical encoding decodes to the same manifest: a fixed point.
	m3, err := Decode(got)
	if err != nil {
		t.Fatalf("Decode(Canonical()): %v", err)
	}
	got3, _ := m3.Canonical()
	if !bytes.Equal(got, got3) {
		t.Errorf("Canonical is not a fixed point:\n%s\n%s", got, got3)
	}

	// Sub-second times survive.
	m.Created = time.Date(2026, 5, 4, 9, 30, 0, 123456789, time.UTC)
	c, _ := m.Canonical()
	if !strings.Contains(string(c), `"created":"2026-05-04T09:30:00.123456789Z"`) {
		t.Errorf("Canonical = %s", c)
	}
	// HTML characters are not escaped (the notes are what they are).
	m.Notes = "a<b & c>d"
	c, _ = m.Canonical()
	if !strings.Contains(string(c), `"notes":"a<b & c>d"`) {
		t.Errorf("Canonical = %s", c)
	}

	// Kernel command line changes: between artifacts and created, and a
	// fixed point too.
	m.Notes = ""
	m.CmdlineAdd, m.CmdlineRemove, m.NoInitrd = []string{"mitigations=auto"}, []string{"mitigations", "nosmt"}, true
	c, err = m.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(c), `}],"cmdline_add":["mitigations=auto"],"cmdline_remove":["mitigations","nosmt"],"no_initrd":true,"created":`) {
		t.Errorf("Canonical = %s", c)
	}
	m4, err := Decode(c)
	if err != nil {
		t.Fatal(err)
	}
	if c4, _ := m4.Canonical(); !bytes.Equal(c, c4) {
		t.Errorf("Canonical with command line changes is not a fixed point:\n%s\n%s", c, c4)
	}

	bad := validManifest()
	bad.Artifacts = nil
	if _, err := bad.Canonical(); err == nil {
		t.Error("Canonical of an invalid manifest: no error")
	}
}

func TestSignVerify(t *testing.T) {
	pub, priv := testKey(1)
	otherPub, otherPriv := testKey(2)
	m := validManifest()
	sig, err := SignManifest(priv, m)
	if err != nil {
		t.Fatal(err)
	}
	if sig.Context != ManifestContext {
		t.Errorf("context %q, want %q", sig.Context, ManifestContext)
	}
	parsed, err := signing.ParseSignature(sig.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	keyID, err := VerifyManifest(m, parsed, []ed25519.PublicKey{otherPub, pub})
	if err != nil || keyID != signing.KeyID(pub) {
		t.Fatalf("VerifyManifest = %q, %v", keyID, err)
	}
	// The same instant in another time zone is the same manifest.
	m.Created = m.Created.In(time.FixedZone("X", -7*3600))
	if _, err := VerifyManifest(m, sig, []ed25519.PublicKey{pub}); err != nil {
		t.Errorf("VerifyManifest after a time zone change: %v", err)
	}

	if _, err := VerifyManifest(validManifest(), sig, []ed25519.PublicKey{otherPub}); !errors.Is(err, signing.ErrUnknownKey) {
		t.Errorf("untrusted key: %v", err)
	}
	policySig := signing.Sign(priv, "kroll-policy-v1", mustCanonical(t, validManifest()))
	if _, err := VerifyManifest(validManifest(), policySig, []ed25519.PublicKey{pub}); !errors.Is(err, signing.ErrWrongContext) {
		t.Errorf("policy signature: %v", err)
	}
	otherSig, _ := SignManifest(otherPriv, validManifest())
	if _, err := VerifyManifest(validManifest(), otherSig, []ed25519.PublicKey{otherPub}); err != nil {
		t.Errorf("other key: %v", err)
	}

	invalid := validManifest()
	invalid.Kind = "rpm"
	var ve *ValidationError
	if _, err := SignManifest(priv, invalid); !errors.As(err, &ve) {
		t.Errorf("SignManifest(invalid) = %v, want *ValidationError", err)
	}
	if _, err := VerifyManifest(invalid, sig, []ed25519.PublicKey{pub}); !errors.As(err, &ve) {
		t.Errorf("VerifyManifest(invalid) = %v, want *ValidationError", err)
	}
	if _, err := SignManifest(priv[:5], validManifest()); err == nil {
		t.Error("SignManifest with a short key: no error")
	}
}

func mustCanonical(t *testing.T, m Manifest) []byte {
	t.Helper()
	c, err := m.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTamperDetected(t *testing.T) {
	pub, priv := testKey(1)
	sig, err := SignManifest(priv, validManifest())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		tamper func(*Manifest)
	}{
		{"id", func(m *Manifest) { m.ID = "6.12.117-kroll.2" }},
		{"line and kernel_version", func(m *Manifest) { m.Line, m.KernelVersion = "6.18", "6.18.22" }},
		{"kernel_version", func(m *Manifest) { m.KernelVersion = "6.12.117+deb12-cloud-amd64" }},
		{"upstream_version added", func(m *Manifest) { m.UpstreamVersion = "6.12.117" }},
		{"kind", func(m *Manifest) { m.Kind = KindBundle }},
		{"artifact name", func(m *Manifest) { m.Artifacts[0].Name = "linux-image2.deb" }},
		{"artifact url", func(m *Manifest) { m.Artifacts[0].URL = "https://evil.example.net/k/linux-image.deb" }},
		{"artifact size", func(m *Manifest) { m.Artifacts[1].Size++ }},
		{"artifact sha256", func(m *Manifest) { m.Artifacts[1].SHA256 = hashA }},
		{"artifact removed", func(m *Manifest) { m.Artifacts = m.Artifacts[:1] }},
		{"artifact added", func(m *Manifest) {
			m.Artifacts = append(m.Artifacts, Artifact{Name: "x", URL: "https://h/x", Size: 1, SHA256: hashA})
		}},
		{"artifacts reordered", func(m *Manifest) { m.Artifacts[0], m.Artifacts[1] = m.Artifacts[1], m.Artifacts[0] }},
		{"created", func(m *Manifest) { m.Created = m.Created.Add(time.Nanosecond) }},
		{"notes", func(m *Manifest) { m.Notes += "." }},
		{"notes removed", func(m *Manifest) { m.Notes = "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validManifest()
			m.Artifacts = append([]Artifact(nil), m.Artifacts...)
			tt.tamper(&m)
			if err := m.Validate(); err != nil {
				t.Fatalf("tampered manifest is invalid, test is wrong: %v", err)
			}
			if _, err := VerifyManifest(m, sig, []ed25519.PublicKey{pub}); !errors.Is(err, signing.ErrBadSignature) {
				t.Errorf("VerifyManifest(tampered %s) = %v, want ErrBadSignature", tt.name, err)
			}
		})
	}
}
