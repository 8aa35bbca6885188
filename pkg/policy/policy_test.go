package policy

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/pkg/kversion"
	"github.com/kroll-dev/kroll/pkg/signing"
)

// testNow is the fixed "current time" of the tests.
var testNow = time.Date(2026, 5, 15, 12, 0, 0, 0, time.UTC)

// designYAML is the example of DESIGN §6, verbatim.
const designYAML = `id: copy-fail
cve: CVE-2026-31431
version: 3                      # monotonic; older versions are rejected
kind: socket-family             # socket-family | module-request | userns-create | file-open
mode: audit                     # audit: count + log, allow; enforce: deny with EPERM
params:
  family: AF_ALG
  operations: [create, bind]
  allow_exe: [/usr/sbin/charon]  # allowed by (dev, inode) of the executable, resolved on the host
applies_to:
  fixed_in: ["6.12.85", "6.18.22", "6.1.170"]   # retire on hosts running a kernel with the fix
  datacenters: []               # empty = all
expires: 2026-06-30T00:00:00Z
`

// designJSON is the same policy as JSON, formatted differently.
const designJSON = `{
  "version": 3,
  "expires": "2026-06-30T02:00:00+02:00",
  "applies_to": {"datacenters": [], "fixed_in": ["6.12.85", "6.18.22", "6.1.170"]},
  "params": {"allow_exe": ["/usr/sbin/charon"], "operations": ["create", "bind"], "family": "AF_ALG"},
  "mode": "audit",
  "kind": "socket-family",
  "cve": "CVE-2026-31431",
  "id": "copy-fail"
}`

const designCanonical = `{"id":"copy-fail","cve":"CVE-2026-31431","version":3,"kind":"socket-family","mode":"audit",` +
	`"params":{"family":"AF_ALG","operations":["create","bind"],"allow_exe":["/usr/sbin/charon"]},` +
	`"applies_to":{"fixed_in":["6.12.85","6.18.22","6.1.170"]},"expires":"2026-06-30T00:00:00Z"}`

func validPolicy() Policy {
	return Policy{
		ID:      "copy-fail",
		CVE:     "CVE-2026-31431",
		Version: 3,
		Kind:    KindSocketFamily,
		Mode:    ModeEnforce,
		Params: Params{
			Family:     "AF_ALG",
			Operations: []Operation{OpCreate, OpBind},
			AllowExe:   []string{"/usr/sbin/charon"},
		},
		AppliesTo: AppliesTo{
			FixedIn:     []string{"6.12.85", "6.18.22", "6.1.170"},
			Datacenters: []string{"fra1", "ams2"},
		},
		Expires: time.Date(2026, 6, 30, 0, 0, 0, 0, time.UTC),
	}
}

func testKey(seed byte) (ed25519.PublicKey, ed25519.PrivateKey) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	return priv.Public().(ed25519.PublicKey), priv
}

func TestDecodeDesignExample(t *testing.T) {
	p, err := Decode([]byte(designYAML), testNow)
	if err != nil {
		t.Fatalf("Decode(DESIGN §6 example): %v", err)
	}
	want := Policy{
		ID: "copy-fail", CVE: "CVE-2026-31431", Version: 3, Kind: KindSocketFamily, Mode: ModeAudit,
		Params:    Params{Family: "AF_ALG", Operations: []Operation{"create", "bind"}, AllowExe: []string{"/usr/sbin/charon"}},
		AppliesTo: AppliesTo{FixedIn: []string{"6.12.85", "6.18.22", "6.1.170"}, Datacenters: []string{}},
		Expires:   time.Date(2026, 6, 30, 0, 0, 0, 0, time.UTC),
	}
	if !equalPolicy(p, want) {
		t.Errorf("Decode =\n%+v\nwant\n%+v", p, want)
	}
	if n, _ := SocketFamily(p.Params.Family); n != 38 {
		t.Errorf("AF_ALG = %d, want 38", n)
	}
	// The same document after its expiry.
	_, err = Decode([]byte(designYAML), time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC))
	if err == nil || !strings.Contains(err.Error(), "expires: 2026-06-30T00:00:00Z is in the past") {
		t.Errorf("Decode after expiry = %v", err)
	}
}

func equalPolicy(a, b Policy) bool {
	ca, errA := a.Canonical()
	cb, errB := b.Canonical()
	return errA == nil && errB == nil && bytes.Equal(ca, cb) && a.Expires.Equal(b.Expires)
}

func TestYAMLAndJSONCanonicalEqual(t *testing.T) {
	fromYAML, err := Decode([]byte(designYAML), testNow)
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := Decode([]byte(designJSON), testNow)
	if err != nil {
		t.Fatal(err)
	}
	cy, err := fromYAML.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	cj, err := fromJSON.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if string(cy) != designCanonical {
		t.Errorf("Canonical(YAML) =\n%s\nwant\n%s", cy, designCanonical)
	}
	if !bytes.Equal(cy, cj) {
		t.Errorf("YAML and JSON forms differ:\n%s\n%s", cy, cj)
	}
	// One signature covers both forms.
	pub, priv := testKey(1)
	sig, err := Sign(priv, fromYAML)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(fromJSON, sig, []ed25519.PublicKey{pub}); err != nil {
		t.Errorf("signature of the YAML form does not verify the JSON form: %v", err)
	}
	// The canonical encoding is itself a valid JSON document of the policy.
	again, err := Decode(cy, testNow)
	if err != nil {
		t.Fatalf("Decode(Canonical()): %v", err)
	}
	if c, _ := again.Canonical(); !bytes.Equal(c, cy) {
		t.Errorf("Canonical is not a fixed point:\n%s\n%s", cy, c)
	}
}

func TestYAMLForms(t *testing.T) {
	tests := []struct {
		name string
		yaml string
	}{
		{"quoted expires", strings.Replace(designYAML, "expires: 2026-06-30T00:00:00Z", `expires: "2026-06-30T00:00:00Z"`, 1)},
		{"expires with offset", strings.Replace(designYAML, "expires: 2026-06-30T00:00:00Z", "expires: 2026-06-30T02:00:00+02:00", 1)},
		{"block lists", strings.Replace(designYAML, "operations: [create, bind]", "operations:\n    - create\n    - bind", 1)},
		{"document start marker", "---\n" + designYAML},
		{"document end marker", designYAML + "...\n"},
		{"flow style", `{id: copy-fail, cve: CVE-2026-31431, version: 3, kind: socket-family, mode: audit,
params: {family: AF_ALG, operations: [create, bind], allow_exe: [/usr/sbin/charon]},
applies_to: {fixed_in: [6.12.85, 6.18.22, 6.1.170]}, expires: 2026-06-30T00:00:00Z}`},
		{"anchors", strings.Replace(designYAML, "id: copy-fail", "id: &name copy-fail", 1)},
		{"CRLF line ends", strings.ReplaceAll(designYAML, "\n", "\r\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.yaml
			if tt.name == "flow style" {
				// A document starting with '{' is JSON; as YAML it needs a
				// leading comment or anything else first.
				in = "# flow\n" + in
			}
			p, err := Decode([]byte(in), testNow)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			c, err := p.Canonical()
			if err != nil {
				t.Fatal(err)
			}
			if string(c) != designCanonical {
				t.Errorf("Canonical =\n%s\nwant\n%s", c, designCanonical)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"empty", "", "empty document"},
		{"only comments", "# nothing\n", "empty document"},
		{"YAML null", "null\n", "must be a JSON object"},
		{"YAML list", "- a\n", "must be a JSON object"},
		{"YAML scalar", "copy-fail\n", "must be a JSON object"},
		{"JSON null", "null", "must be a JSON object"},
		{"YAML syntax", "id: [\n", "decode policy: YAML"},
		{"JSON syntax", "{id: copy-fail}", "invalid character"},
		{"unknown field", designYAML + "owner: sre\n", "owner: unknown field"},
		{"unknown params field", strings.Replace(designYAML, "family: AF_ALG", "family: AF_ALG\n  protocol: 0", 1), "params.protocol: unknown field"},
		{"unknown applies_to field", strings.Replace(designYAML, "datacenters: []", "datacenters: []\n  hosts: [a]", 1), "applies_to.hosts: unknown field"},
		{"case-folded field", strings.Replace(designYAML, "mode: audit", "Mode: audit", 1), "Mode: unknown field"},
		{"duplicate YAML key", designYAML + "mode: enforce\n", "already set"},
		{"duplicate JSON key", strings.Replace(designJSON, `"mode": "audit",`, `"mode": "audit", "mode": "enforce",`, 1), "mode: duplicate key"},
		{"second YAML document", designYAML + "---\nid: other\n", "more than one document"},
		{"broken second YAML document", designYAML + "---\nid: [\n", "after the first document"},
		{"trailing JSON", designJSON + "{}", "unexpected data after JSON value"},
		{"too large", designYAML + "#" + strings.Repeat("x", MaxPolicySize), "too large"},
		{"id as number", strings.Replace(designYAML, "id: copy-fail", "id: 123", 1), "id: must be a string, not a JSON number"},
		{"version as string", strings.Replace(designYAML, "version: 3 ", `version: "3"`, 1), "version: must be an integer in range, not a JSON string"},
		{"version as float", strings.Replace(designYAML, "version: 3 ", "version: 3.5", 1), "version: must be an integer"},
		{"version overflow", strings.Replace(designYAML, "version: 3 ", "version: 99999999999999999999", 1), "version: must be an integer"},
		{"YAML bool for string", strings.Replace(designYAML, "datacenters: []", "datacenters: [no]", 1), "applies_to.datacenters: must be a string, not a JSON bool"},
		{"expires date only", strings.Replace(designYAML, "expires: 2026-06-30T00:00:00Z", "expires: 2026-06-30", 1), `expires: must be an RFC 3339 time with time zone such as 2026-06-30T00:00:00Z, not "2026-06-30"`},
		{"expires without zone", strings.Replace(designYAML, "expires: 2026-06-30T00:00:00Z", "expires: 2026-06-30T00:00:00", 1), "expires: must be an RFC 3339 time"},
		{"expires with space", strings.Replace(designYAML, "expires: 2026-06-30T00:00:00Z", "expires: 2026-06-30 00:00:00Z", 1), "expires: must be an RFC 3339 time"},
		{"expires as number", strings.Replace(designYAML, "expires: 2026-06-30T00:00:00Z", "expires: 1782777600", 1), "expires: must be a string"},
		{"expires missing", strings.Replace(designYAML, "expires: 2026-06-30T00:00:00Z\n", "", 1), "expires: required"},
		{"bad expires listed with other problems", strings.Replace(strings.Replace(designYAML, "expires: 2026-06-30T00:00:00Z", "expires: soon", 1), "mode: audit", "mode: loud", 1),
			`invalid policy: mode: must be audit or enforce, not "loud"; expires: must be an RFC 3339 time`},
		{"alias bomb", "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n" +
			"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n" +
			"g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]\n", "decode policy: YAML"},
		{"invalid UTF-8 in JSON", "{\"id\":\"\xff\"}", "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.in), testNow)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Decode error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	long := "/" + strings.Repeat("a", MaxPathLen)
	tests := []struct {
		name   string
		mutate func(*Policy)
		want   string // "" = valid; else the one expected problem
	}{
		{"valid", func(*Policy) {}, ""},
		{"no cve", func(p *Policy) { p.CVE = "" }, ""},
		{"no datacenters", func(p *Policy) { p.AppliesTo.Datacenters = nil }, ""},
		{"no allow_exe", func(p *Policy) { p.Params.AllowExe = nil }, ""},
		{"audit", func(p *Policy) { p.Mode = ModeAudit }, ""},

		{"id missing", func(p *Policy) { p.ID = "" }, "id: required"},
		{"id upper case", func(p *Policy) { p.ID = "Copy-Fail" }, `id: must be 1 to 63 characters of [a-z0-9-], not starting or ending with '-'; not "Copy-Fail"`},
		{"id leading dash", func(p *Policy) { p.ID = "-copy" }, "id: must be 1 to 63 characters"},
		{"id trailing dash", func(p *Policy) { p.ID = "copy-" }, "id: must be 1 to 63 characters"},
		{"id with slash", func(p *Policy) { p.ID = "a/b" }, "id: must be 1 to 63 characters"},
		{"id dot dot", func(p *Policy) { p.ID = ".." }, "id: must be 1 to 63 characters"},
		{"id underscore", func(p *Policy) { p.ID = "copy_fail" }, "id: must be 1 to 63 characters"},
		{"id one char", func(p *Policy) { p.ID = "x" }, ""},
		{"id 63 chars", func(p *Policy) { p.ID = strings.Repeat("a", 63) }, ""},
		{"id 64 chars", func(p *Policy) { p.ID = strings.Repeat("a", 64) }, "id: must be 1 to 63 characters"},

		{"cve lower case", func(p *Policy) { p.CVE = "cve-2026-31431" }, `cve: must look like CVE-YYYY-NNNN, not "cve-2026-31431"`},
		{"cve short number", func(p *Policy) { p.CVE = "CVE-2026-123" }, "cve: must look like CVE-YYYY-NNNN"},
		{"cve long number", func(p *Policy) { p.CVE = "CVE-2026-1234567" }, ""},
		{"cve two-digit year", func(p *Policy) { p.CVE = "CVE-26-31431" }, "cve: must look like"},
		{"cve trailing text", func(p *Policy) { p.CVE = "CVE-2026-31431 (copy fail)" }, "cve: must look like"},

		{"version zero", func(p *Policy) { p.Version = 0 }, "version: must be > 0"},
		{"version negative", func(p *Policy) { p.Version = -1 }, "version: must be > 0"},

		{"kind missing", func(p *Policy) { p.Kind = "" }, "kind: required"},
		{"kind unknown", func(p *Policy) { p.Kind = "ptrace" }, `kind: must be one of socket-family, module-request, userns-create, file-open; not "ptrace"`},
		{"mode missing", func(p *Policy) { p.Mode = "" }, "mode: required"},
		{"mode unknown", func(p *Policy) { p.Mode = "deny" }, `mode: must be audit or enforce, not "deny"`},

		// socket-family
		{"family missing", func(p *Policy) { p.Params.Family = "" }, "params.family: required"},
		{"family unknown", func(p *Policy) { p.Params.Family = "AF_FOO" }, `params.family: unknown socket family "AF_FOO"`},
		{"family lower case", func(p *Policy) { p.Params.Family = "af_alg" }, `params.family: unknown socket family "af_alg"`},
		{"family number", func(p *Policy) { p.Params.Family = "38" }, `params.family: unknown socket family "38"`},
		{"family PF_ name", func(p *Policy) { p.Params.Family = "PF_ALG" }, `params.family: unknown socket family "PF_ALG"`},
		{"family AF_UNSPEC", func(p *Policy) { p.Params.Family = "AF_UNSPEC" }, "params.family: AF_UNSPEC is not a socket family that can be restricted"},
		{"family alias", func(p *Policy) { p.Params.Family = "AF_LOCAL" }, ""},
		{"family AF_MCTP", func(p *Policy) { p.Params.Family = "AF_MCTP" }, ""},
		{"operations missing", func(p *Policy) { p.Params.Operations = nil }, "params.operations: must not be empty"},
		{"operations empty", func(p *Policy) { p.Params.Operations = []Operation{} }, "params.operations: must not be empty"},
		{"operation unknown", func(p *Policy) { p.Params.Operations = []Operation{"create", "connect"} }, `params.operations[1]: must be create or bind, not "connect"`},
		{"operation duplicate", func(p *Policy) { p.Params.Operations = []Operation{"bind", "bind"} }, `params.operations[1]: duplicate operation "bind"`},
		{"bind only", func(p *Policy) { p.Params.Operations = []Operation{"bind"} }, ""},
		{"allow_exe relative", func(p *Policy) { p.Params.AllowExe = []string{"charon"} }, "params.allow_exe[0]: must be an absolute path"},
		{"allow_exe empty string", func(p *Policy) { p.Params.AllowExe = []string{"/a", ""} }, "params.allow_exe[1]: must be an absolute path"},
		{"allow_exe not clean", func(p *Policy) { p.Params.AllowExe = []string{"/usr/sbin/../bin/x"} }, "params.allow_exe[0]: must be a clean path (/usr/bin/x, not /usr/sbin/../bin/x)"},
		{"allow_exe double slash", func(p *Policy) { p.Params.AllowExe = []string{"//usr/bin/x"} }, "params.allow_exe[0]: must be a clean path"},
		{"allow_exe trailing slash", func(p *Policy) { p.Params.AllowExe = []string{"/usr/bin/"} }, "params.allow_exe[0]: must be a clean path"},
		{"allow_exe control char", func(p *Policy) { p.Params.AllowExe = []string{"/usr/bin/x\n"} }, "params.allow_exe[0]: must not contain control characters"},
		{"allow_exe NUL", func(p *Policy) { p.Params.AllowExe = []string{"/usr/bin/x\x00y"} }, "params.allow_exe[0]: must not contain control characters"},
		{"allow_exe too long", func(p *Policy) { p.Params.AllowExe = []string{long} }, "params.allow_exe[0]: must be at most 4095 bytes"},
		{"allow_exe duplicate", func(p *Policy) { p.Params.AllowExe = []string{"/a", "/b", "/a"} }, `params.allow_exe[2]: duplicate path "/a"`},
		{"allow_exe too many", func(p *Policy) { p.Params.AllowExe = manyPaths(MaxListLen + 1) }, "params.allow_exe: must have at most 256 entries"},
		{"socket-family with modules", func(p *Policy) { p.Params.Modules = []string{"algif_aead"} }, "params.modules: not allowed for kind socket-family"},
		{"socket-family with empty paths", func(p *Policy) { p.Params.Paths = []string{} }, "params.paths: not allowed for kind socket-family"},

		// module-request
		{"module-request", func(p *Policy) {
			p.Kind, p.Params = KindModuleRequest, Params{Modules: []string{"algif_aead", "net-pf-38", "crypto-authencesn", "authencesn"}}
		}, ""},
		{"modules missing", func(p *Policy) { p.Kind, p.Params = KindModuleRequest, Params{} }, "params.modules: must not be empty"},
		{"module empty", func(p *Policy) { p.Kind, p.Params = KindModuleRequest, Params{Modules: []string{""}} }, "params.modules[0]: must not be empty"},
		{"module bad chars", func(p *Policy) {
			p.Kind, p.Params = KindModuleRequest, Params{Modules: []string{"x", "algif aead"}}
		}, `params.modules[1]: must be a module name or alias of [A-Za-z0-9_.-], not "algif aead"`},
		{"module with slash", func(p *Policy) { p.Kind, p.Params = KindModuleRequest, Params{Modules: []string{"../x"}} }, "params.modules[0]: must be a module name"},
		{"module 55 chars", func(p *Policy) {
			p.Kind, p.Params = KindModuleRequest, Params{Modules: []string{strings.Repeat("m", 55)}}
		}, ""},
		{"module 56 chars", func(p *Policy) {
			p.Kind, p.Params = KindModuleRequest, Params{Modules: []string{strings.Repeat("m", 56)}}
		}, "params.modules[0]: must be at most 55 characters"},
		{"module duplicate", func(p *Policy) { p.Kind, p.Params = KindModuleRequest, Params{Modules: []string{"a", "a"}} }, `params.modules[1]: duplicate module "a"`},
		{"modules too many", func(p *Policy) {
			p.Kind, p.Params = KindModuleRequest, Params{Modules: make([]string, MaxListLen+1)}
		}, "params.modules: must have at most 256 entries"},
		{"module-request with family", func(p *Policy) {
			p.Kind, p.Params = KindModuleRequest, Params{Modules: []string{"a"}, Family: "AF_ALG"}
		}, "params.family: not allowed for kind module-request"},
		{"module-request with allow_exe", func(p *Policy) {
			p.Kind, p.Params = KindModuleRequest, Params{Modules: []string{"a"}, AllowExe: []string{"/x"}}
		}, "params.allow_exe: not allowed for kind module-request"},

		// userns-create
		{"userns-create", func(p *Policy) { p.Kind, p.Params = KindUsernsCreate, Params{} }, ""},
		{"userns-create with allow_exe", func(p *Policy) {
			p.Kind, p.Params = KindUsernsCreate, Params{AllowExe: []string{"/usr/bin/bwrap"}}
		}, ""},
		{"userns-create bad allow_exe", func(p *Policy) {
			p.Kind, p.Params = KindUsernsCreate, Params{AllowExe: []string{"bwrap"}}
		}, "params.allow_exe[0]: must be an absolute path"},
		{"userns-create with operations", func(p *Policy) {
			p.Kind, p.Params = KindUsernsCreate, Params{Operations: []Operation{"create"}}
		}, "params.operations: not allowed for kind userns-create"},

		// file-open
		{"file-open", func(p *Policy) { p.Kind, p.Params = KindFileOpen, Params{Paths: []string{"/etc/shadow", "/dev/mem"}} }, ""},
		{"paths missing", func(p *Policy) { p.Kind, p.Params = KindFileOpen, Params{} }, "params.paths: must not be empty"},
		{"path relative", func(p *Policy) { p.Kind, p.Params = KindFileOpen, Params{Paths: []string{"etc/shadow"}} }, "params.paths[0]: must be an absolute path"},
		{"path not clean", func(p *Policy) { p.Kind, p.Params = KindFileOpen, Params{Paths: []string{"/etc/./shadow"}} }, "params.paths[0]: must be a clean path (/etc/shadow, not /etc/./shadow)"},
		{"path duplicate", func(p *Policy) { p.Kind, p.Params = KindFileOpen, Params{Paths: []string{"/a", "/a"}} }, `params.paths[1]: duplicate path "/a"`},
		{"paths too many", func(p *Policy) { p.Kind, p.Params = KindFileOpen, Params{Paths: manyPaths(MaxListLen + 1)} }, "params.paths: must have at most 256 entries"},
		{"file-open with allow_exe", func(p *Policy) {
			p.Kind, p.Params = KindFileOpen, Params{Paths: []string{"/a"}, AllowExe: []string{"/x"}}
		}, "params.allow_exe: not allowed for kind file-open"},

		// applies_to
		{"fixed_in missing", func(p *Policy) { p.AppliesTo.FixedIn = nil }, "applies_to.fixed_in: must not be empty"},
		{"fixed_in garbage", func(p *Policy) { p.AppliesTo.FixedIn = []string{"6.12.85", "soon"} }, "applies_to.fixed_in[1]: "},
		{"fixed_in Debian ABI name", func(p *Policy) { p.AppliesTo.FixedIn = []string{"6.1.0-47-amd64"} }, `applies_to.fixed_in[0]: kversion: unknown version format: "6.1.0-47-amd64": a Debian kernel release name`},
		{"fixed_in Debian versioned name", func(p *Policy) { p.AppliesTo.FixedIn = []string{"6.12.117+deb12-amd64"} }, `applies_to.fixed_in[0]: kversion: unknown version format: "6.12.117+deb12-amd64": a Debian kernel release name`},
		{"fixed_in internal build", func(p *Policy) { p.AppliesTo.FixedIn = []string{"6.12.80-cf1"} }, ""},
		{"fixed_in internal build with flavour", func(p *Policy) { p.AppliesTo.FixedIn = []string{"6.12.80-cf1-amd64"} }, `applies_to.fixed_in[0]: kversion: unknown version format: "6.12.80-cf1-amd64": names the kernel flavour "amd64"`},
		{"fixed_in Debian package", func(p *Policy) { p.AppliesTo.FixedIn = []string{"6.12.80-1~deb12u1"} }, ""},
		{"fixed_in every form of one line", func(p *Policy) { p.AppliesTo.FixedIn = []string{"6.12.85", "6.12.80-cf1", "6.12.80-1~deb12u1"} }, ""},
		{"fixed_in two builds of one series", func(p *Policy) { p.AppliesTo.FixedIn = []string{"6.12.80-cf1", "6.12.81-cf1"} }, "applies_to.fixed_in[1]: second build entry for line 6.12 (applies_to.fixed_in[0] is 6.12.80-cf1)"},
		{"fixed_in bad suffix", func(p *Policy) { p.AppliesTo.FixedIn = []string{"6.12.85+"} }, `applies_to.fixed_in[0]: kversion: unknown version format: "6.12.85+": local suffix "+"`},
		{"fixed_in epoch", func(p *Policy) { p.AppliesTo.FixedIn = []string{"1:6.12.80-1"} }, "applies_to.fixed_in[0]: "},
		{"fixed_in release candidate", func(p *Policy) { p.AppliesTo.FixedIn = []string{"6.19.0-rc3"} }, ""},
		{"fixed_in two of one line", func(p *Policy) { p.AppliesTo.FixedIn = []string{"6.12.85", "6.1.170", "6.12.90"} }, "applies_to.fixed_in[2]: second upstream entry for line 6.12 (applies_to.fixed_in[0] is 6.12.85)"},
		{"fixed_in too many", func(p *Policy) {
			p.AppliesTo.FixedIn = nil
			for i := 0; i <= MaxListLen; i++ {
				p.AppliesTo.FixedIn = append(p.AppliesTo.FixedIn, "5."+strings.Repeat("1", 1)+"."+string(rune('0'+i%10)))
			}
		}, "applies_to.fixed_in: must have at most 256 entries"},
		{"datacenter bad name", func(p *Policy) { p.AppliesTo.Datacenters = []string{"fra1", "FRA2"} }, `applies_to.datacenters[1]: must be 1 to 63 characters of [a-z0-9-], not starting or ending with '-'; not "FRA2"`},
		{"datacenter empty name", func(p *Policy) { p.AppliesTo.Datacenters = []string{""} }, "applies_to.datacenters[0]: required"},
		{"datacenter duplicate", func(p *Policy) { p.AppliesTo.Datacenters = []string{"fra1", "fra1"} }, `applies_to.datacenters[1]: duplicate datacenter "fra1"`},
		{"datacenters too many", func(p *Policy) { p.AppliesTo.Datacenters = make([]string, MaxListLen+1) }, "applies_to.datacenters: must have at most 256 entries"},

		// expires
		{"expires missing", func(p *Policy) { p.Expires = time.Time{} }, "expires: required"},
		{"expires in the past", func(p *Policy) { p.Expires = testNow.Add(-time.Hour) }, "expires: 2026-05-15T11:00:00Z is in the past"},
		{"expires now", func(p *Policy) { p.Expires = testNow }, "expires: 2026-05-15T12:00:00Z is in the past"},
		{"expires in a nanosecond", func(p *Policy) { p.Expires = testNow.Add(time.Nanosecond) }, ""},
		{"expires absurd", func(p *Policy) { p.Expires = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC) }, "expires: 9999-12-31T00:00:00Z is out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := validPolicy()
			tt.mutate(&p)
			err := p.Validate(testNow)
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

func manyPaths(n int) []string {
	paths := make([]string, n)
	for i := range paths {
		paths[i] = "/p/" + strings.Repeat("x", i+1)
	}
	return paths
}

func TestValidationErrorListsAll(t *testing.T) {
	p := validPolicy()
	p.Version = 0
	p.Params.Family = "AF_FOO"
	p.Params.AllowExe = []string{"charon"}
	p.AppliesTo.FixedIn = []string{"6.12.x"}
	p.Expires = testNow.Add(-time.Second)
	err := p.Validate(testNow)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Validate = %v", err)
	}
	var fields []string
	for _, fe := range ve.Errors {
		fields = append(fields, fe.Field)
	}
	want := "version,params.family,params.allow_exe[0],applies_to.fixed_in[0],expires"
	if got := strings.Join(fields, ","); got != want {
		t.Errorf("fields = %s, want %s", got, want)
	}
	if !errors.Is(err, kversion.ErrUnknownFormat) {
		t.Error("the fixed_in problem does not wrap kversion.ErrUnknownFormat")
	}
	if msg := err.Error(); !strings.HasPrefix(msg, `invalid policy: version: must be > 0; params.family: unknown socket family "AF_FOO"; params.allow_exe[0]: must be an absolute path; `) {
		t.Errorf("Error() = %q", msg)
	}
}

func TestCanonicalIgnoresExpiry(t *testing.T) {
	p := validPolicy()
	p.Expires = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := p.Canonical(); err != nil {
		t.Errorf("Canonical of an expired policy: %v", err)
	}
	p.Version = 0
	if _, err := p.Canonical(); err == nil {
		t.Error("Canonical of an invalid policy: no error")
	}
}

func TestCanonicalKinds(t *testing.T) {
	tests := []struct {
		name string
		p    Policy
		want string
	}{
		{"userns-create without params", Policy{ID: "userns", Version: 1, Kind: KindUsernsCreate, Mode: ModeAudit,
			AppliesTo: AppliesTo{FixedIn: []string{"6.12.1"}}, Expires: time.Date(2027, 1, 2, 3, 4, 5, 600, time.FixedZone("x", 3600))},
			`{"id":"userns","version":1,"kind":"userns-create","mode":"audit","params":{},"applies_to":{"fixed_in":["6.12.1"]},"expires":"2027-01-02T02:04:05.0000006Z"}`},
		{"module-request", Policy{ID: "m", Version: 7, Kind: KindModuleRequest, Mode: ModeEnforce,
			Params:    Params{Modules: []string{"net-pf-38", "algif_aead"}},
			AppliesTo: AppliesTo{FixedIn: []string{"6.1.170"}, Datacenters: []string{"fra1"}}, Expires: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
			`{"id":"m","version":7,"kind":"module-request","mode":"enforce","params":{"modules":["net-pf-38","algif_aead"]},"applies_to":{"fixed_in":["6.1.170"],"datacenters":["fra1"]},"expires":"2027-01-01T00:00:00Z"}`},
		{"file-open with HTML characters", Policy{ID: "f", Version: 1, Kind: KindFileOpen, Mode: ModeEnforce,
			Params:    Params{Paths: []string{"/a<b>&c"}},
			AppliesTo: AppliesTo{FixedIn: []string{"6.1.170"}}, Expires: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
			`{"id":"f","version":1,"kind":"file-open","mode":"enforce","params":{"paths":["/a<b>&c"]},"applies_to":{"fixed_in":["6.1.170"]},"expires":"2027-01-01T00:00:00Z"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.p.Canonical()
			if err != nil {
				t.Fatal(err)
			}
			if string(c) != tt.want {
				t.Errorf("Canonical =\n%s\nwant\n%s", c, tt.want)
			}
			p2, err := Decode(c, testNow)
			if err != nil {
				t.Fatalf("Decode(Canonical()): %v", err)
			}
			if c2, _ := p2.Canonical(); !bytes.Equal(c, c2) {
				t.Errorf("not a fixed point:\n%s\n%s", c, c2)
			}
		})
	}
}

func TestSignVerify(t *testing.T) {
	pub, priv := testKey(1)
	otherPub, _ := testKey(2)
	p := validPolicy()
	sig, err := Sign(priv, p)
	if err != nil {
		t.Fatal(err)
	}
	if sig.Context != PolicyContext {
		t.Errorf("context %q, want %q", sig.Context, PolicyContext)
	}
	parsed, err := signing.ParseSignature(sig.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	keyID, err := Verify(p, parsed, []ed25519.PublicKey{otherPub, pub})
	if err != nil || keyID != signing.KeyID(pub) {
		t.Fatalf("Verify = %q, %v", keyID, err)
	}
	if _, err := Verify(p, sig, []ed25519.PublicKey{otherPub}); !errors.Is(err, signing.ErrUnknownKey) {
		t.Errorf("untrusted key: %v", err)
	}
	c, _ := p.Canonical()
	releaseSig := signing.Sign(priv, "kroll-release-v1", c)
	if _, err := Verify(p, releaseSig, []ed25519.PublicKey{pub}); !errors.Is(err, signing.ErrWrongContext) {
		t.Errorf("release signature: %v", err)
	}
	// Verify does not look at the clock: an expired policy still has a
	// valid signature (Decode rejects it).
	expired := p
	expired.Expires = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	sigExpired, err := Sign(priv, expired)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(expired, sigExpired, []ed25519.PublicKey{pub}); err != nil {
		t.Errorf("Verify(expired): %v", err)
	}
	invalid := validPolicy()
	invalid.Mode = "loud"
	var ve *ValidationError
	if _, err := Sign(priv, invalid); !errors.As(err, &ve) {
		t.Errorf("Sign(invalid) = %v", err)
	}
	if _, err := Verify(invalid, sig, []ed25519.PublicKey{pub}); !errors.As(err, &ve) {
		t.Errorf("Verify(invalid) = %v", err)
	}
	if _, err := Sign(priv[:3], p); err == nil {
		t.Error("Sign with short key: no error")
	}
}

func TestTamperDetected(t *testing.T) {
	pub, priv := testKey(1)
	sig, err := Sign(priv, validPolicy())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		tamper func(*Policy)
	}{
		{"id", func(p *Policy) { p.ID = "copy-fail2" }},
		{"cve", func(p *Policy) { p.CVE = "CVE-2026-31432" }},
		{"cve removed", func(p *Policy) { p.CVE = "" }},
		{"version", func(p *Policy) { p.Version = 4 }},
		{"kind", func(p *Policy) { p.Kind = KindUsernsCreate; p.Params = Params{AllowExe: []string{"/usr/sbin/charon"}} }},
		{"mode", func(p *Policy) { p.Mode = ModeAudit }},
		{"params.family", func(p *Policy) { p.Params.Family = "AF_PACKET" }},
		{"params.operations", func(p *Policy) { p.Params.Operations = []Operation{OpCreate} }},
		{"params.operations order", func(p *Policy) { p.Params.Operations = []Operation{OpBind, OpCreate} }},
		{"params.allow_exe added", func(p *Policy) { p.Params.AllowExe = []string{"/usr/sbin/charon", "/bin/sh"} }},
		{"params.allow_exe changed", func(p *Policy) { p.Params.AllowExe = []string{"/bin/sh"} }},
		{"params.allow_exe removed", func(p *Policy) { p.Params.AllowExe = nil }},
		{"applies_to.fixed_in", func(p *Policy) { p.AppliesTo.FixedIn = []string{"6.12.84", "6.18.22", "6.1.170"} }},
		{"applies_to.fixed_in dropped line", func(p *Policy) { p.AppliesTo.FixedIn = []string{"6.12.85", "6.18.22"} }},
		{"applies_to.datacenters", func(p *Policy) { p.AppliesTo.Datacenters = []string{"fra1"} }},
		{"applies_to.datacenters removed", func(p *Policy) { p.AppliesTo.Datacenters = nil }},
		{"expires", func(p *Policy) { p.Expires = p.Expires.Add(time.Second) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := validPolicy()
			tt.tamper(&p)
			if err := p.Validate(testNow); err != nil {
				t.Fatalf("tampered policy is invalid, test is wrong: %v", err)
			}
			if _, err := Verify(p, sig, []ed25519.PublicKey{pub}); !errors.Is(err, signing.ErrBadSignature) {
				t.Errorf("Verify(tampered) = %v, want ErrBadSignature", err)
			}
		})
	}
	// Module and path lists are covered too.
	mp := Policy{ID: "m", Version: 1, Kind: KindModuleRequest, Mode: ModeEnforce, Params: Params{Modules: []string{"a"}},
		AppliesTo: AppliesTo{FixedIn: []string{"6.1.170"}}, Expires: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}
	msig, _ := Sign(priv, mp)
	mp.Params.Modules = []string{"b"}
	if _, err := Verify(mp, msig, []ed25519.PublicKey{pub}); !errors.Is(err, signing.ErrBadSignature) {
		t.Errorf("Verify(tampered modules) = %v", err)
	}
	fp := Policy{ID: "f", Version: 1, Kind: KindFileOpen, Mode: ModeEnforce, Params: Params{Paths: []string{"/a"}},
		AppliesTo: AppliesTo{FixedIn: []string{"6.1.170"}}, Expires: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}
	fsig, _ := Sign(priv, fp)
	fp.Params.Paths = []string{"/b"}
	if _, err := Verify(fp, fsig, []ed25519.PublicKey{pub}); !errors.Is(err, signing.ErrBadSignature) {
		t.Errorf("Verify(tampered paths) = %v", err)
	}
}

func TestSupersedes(t *testing.T) {
	tests := []struct {
		name       string
		newID      string
		newVersion int64
		oldID      string
		oldVersion int64
		want       string
		notNewer   bool
	}{
		{"newer", "copy-fail", 4, "copy-fail", 3, "", false},
		{"much newer", "copy-fail", 100, "copy-fail", 3, "", false},
		{"same version", "copy-fail", 3, "copy-fail", 3, `policy "copy-fail": policy is not newer: version 3 is not newer than 3`, true},
		{"older", "copy-fail", 2, "copy-fail", 3, "version 2 is not newer than 3", true},
		{"other id", "other", 9, "copy-fail", 3, `policy "other" cannot supersede policy "copy-fail": different ids`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, old := validPolicy(), validPolicy()
			p.ID, p.Version = tt.newID, tt.newVersion
			old.ID, old.Version = tt.oldID, tt.oldVersion
			err := p.Supersedes(old)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Supersedes: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Supersedes = %v, want %q", err, tt.want)
			}
			if errors.Is(err, ErrNotNewer) != tt.notNewer {
				t.Errorf("errors.Is(ErrNotNewer) = %v, want %v", !tt.notNewer, tt.notNewer)
			}
		})
	}
}

func TestAppliesToDC(t *testing.T) {
	tests := []struct {
		dcs  []string
		dc   string
		want bool
	}{
		{nil, "fra1", true},
		{[]string{}, "fra1", true},
		{[]string{"fra1", "ams2"}, "fra1", true},
		{[]string{"fra1", "ams2"}, "ams2", true},
		{[]string{"fra1", "ams2"}, "lhr1", false},
		{[]string{"fra1"}, "FRA1", false},
		{[]string{"fra1"}, "", false},
	}
	for _, tt := range tests {
		p := validPolicy()
		p.AppliesTo.Datacenters = tt.dcs
		if got := p.AppliesToDC(tt.dc); got != tt.want {
			t.Errorf("AppliesToDC(%q) with %v = %v, want %v", tt.dc, tt.dcs, got, tt.want)
		}
	}
}

func TestFixed(t *testing.T) {
	p := validPolicy() // fixed in 6.12.85, 6.18.22, 6.1.170
	tests := []struct {
		running string
		want    bool
		wantErr bool
	}{
		{"6.12.85", true, false},
		{"6.12.117+deb12-amd64", true, false},
		{"6.12.84", false, false},
		{"6.18.21-kroll", false, false},
		{"6.18.22", true, false},
		{"6.1.169", false, false},
		{"6.6.100", false, false}, // no fix known for the line
		{"6.1.0-47-amd64", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.running, func(t *testing.T) {
			v, err := kversion.Parse(tt.running)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.Fixed(v)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("Fixed(%s) = %v, %v; want %v, error %v", tt.running, got, err, tt.want, tt.wantErr)
			}
		})
	}
	bad := p
	bad.AppliesTo.FixedIn = []string{"garbage"}
	v, _ := kversion.Parse("6.12.85")
	if _, err := bad.Fixed(v); !errors.Is(err, kversion.ErrUnknownFormat) {
		t.Errorf("Fixed with bad fixed_in: %v", err)
	}
}

// TestFixedBuildsAndPackages: the Copy Fail path, a patched internal build
// of the previous line, and a Debian package version as fixed_in.
func TestFixedBuildsAndPackages(t *testing.T) {
	p := validPolicy()
	p.AppliesTo.FixedIn = []string{"6.12.80-cf1", "6.18.22", "6.1.192-2"}
	if err := p.Validate(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	proc := func(release, pkg string) string {
		return "Linux version " + release + " (debian-kernel@lists.debian.org) (gcc-12) #1 SMP PREEMPT_DYNAMIC Debian " + pkg + " (2026-10-02)"
	}
	for _, tt := range []struct {
		running string
		want    bool
	}{
		{"6.12.80-cf1-amd64", true},
		{"6.12.80-cf2-amd64", true},
		{"6.12.79-cf7-amd64", false},
		{"6.12.90", false}, // plain upstream: the build's patch is not known to be in it
		{"6.12.85-zz9-amd64", false},
		{proc("6.1.0-56-amd64", "6.1.192-2"), true},
		{proc("6.1.0-56-amd64", "6.1.192-1"), false},
		{proc("6.1.0-57-amd64", "6.1.193-1~deb12u1"), true},
	} {
		t.Run(tt.running, func(t *testing.T) {
			var (
				v   kversion.Version
				err error
			)
			if strings.HasPrefix(tt.running, "Linux ") {
				v, err = kversion.ParseProcVersion(tt.running)
			} else {
				v, err = kversion.Parse(tt.running)
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, err := p.Fixed(v); err != nil || got != tt.want {
				t.Errorf("Fixed(%s) = %v, %v; want %v", tt.running, got, err, tt.want)
			}
		})
	}
}

func TestSocketFamily(t *testing.T) {
	tests := []struct {
		name string
		num  int
		ok   bool
	}{
		{"AF_UNSPEC", 0, true},
		{"AF_UNIX", 1, true},
		{"AF_LOCAL", 1, true},
		{"AF_FILE", 1, true},
		{"AF_INET", 2, true},
		{"AF_INET6", 10, true},
		{"AF_DECnet", 12, true},
		{"AF_NETLINK", 16, true},
		{"AF_ROUTE", 16, true},
		{"AF_PACKET", 17, true},
		{"AF_CAN", 29, true},
		{"AF_BLUETOOTH", 31, true},
		{"AF_ALG", 38, true},
		{"AF_VSOCK", 40, true},
		{"AF_XDP", 44, true},
		{"AF_MCTP", 45, true},
		{"AF_MAX", 0, false},
		{"AF_DECNET", 0, false},
		{"af_alg", 0, false},
		{"PF_ALG", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		n, ok := SocketFamily(tt.name)
		if n != tt.num || ok != tt.ok {
			t.Errorf("SocketFamily(%q) = %d, %v; want %d, %v", tt.name, n, ok, tt.num, tt.ok)
		}
	}
	// Every number 0..45 has a name that maps back to it.
	for i := 0; i <= 45; i++ {
		name := SocketFamilyName(i)
		if name == "" {
			t.Errorf("SocketFamilyName(%d) = \"\"", i)
			continue
		}
		if n, ok := SocketFamily(name); !ok || n != i {
			t.Errorf("SocketFamily(SocketFamilyName(%d) = %q) = %d, %v", i, name, n, ok)
		}
	}
	for _, n := range []int{-1, 46, 1000} {
		if name := SocketFamilyName(n); name != "" {
			t.Errorf("SocketFamilyName(%d) = %q, want \"\"", n, name)
		}
	}
}
