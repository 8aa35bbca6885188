package journal

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/agent/anycast"
	"github.com/kroll-dev/kroll/pkg/wire"
)

func sample() *Journal {
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	j := New(now)
	j.Phase = wire.PhaseRebooting
	j.Target = &Target{ID: "r1", KernelRelease: "6.1.0-56-amd64", Manifest: json.RawMessage(`{"id":"r1"}`), Signature: json.RawMessage(`{}`)}
	j.Slot = &Slot{Datacenter: "fra1", Token: 7, LeaseExpires: now}
	j.Withdrawn = true
	j.Routes = []anycast.Route{{Dst: netip.MustParsePrefix("192.0.2.0/24"), Table: 100, Type: "blackhole"}}
	j.Previous = &Kernel{Release: "6.1.0-47-amd64", BootID: "b1"}
	j.Boots = []Boot{{Method: "kexec", Into: "6.1.0-56-amd64", BootIDBefore: "b1", Started: now}}
	j.Done = map[string]string{"r0": "healthy"}
	return j
}

func TestSaveLoadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	st, err := NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	j, err := st.Load(time.Now())
	if err != nil || j.Phase != wire.PhaseIdle || j.Schema != Schema {
		t.Fatalf("fresh load: %+v, %v", j, err)
	}
	want := sample()
	if err := st.Save(want, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := st.Save(want, time.Now()); err != nil {
		t.Fatal(err)
	}
	got, err := st.Load(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(want)
	b, _ := json.Marshal(got)
	if !bytes.Equal(a, b) || got.Seq != 2 {
		t.Fatalf("round trip:\n%s\n%s", a, b)
	}
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("journal file mode: %v %v", fi, err)
	}
	if c := got.Clone(); c.Routes[0] != got.Routes[0] || &c.Routes[0] == &got.Routes[0] {
		t.Fatal("Clone is not a deep copy")
	}
}

func TestDecodeRejects(t *testing.T) {
	for name, data := range map[string]string{
		"not json":      `{`,
		"wrong schema":  `{"schema":2,"phase":"idle"}`,
		"no schema":     `{"phase":"idle"}`,
		"unknown field": `{"schema":1,"phase":"idle","x":1}`,
		"no phase":      `{"schema":1}`,
		"duplicate":     `{"schema":1,"phase":"idle","phase":"failed"}`,
		"trailing":      `{"schema":1,"phase":"idle"} {}`,
	} {
		if _, err := Decode([]byte(data)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzDecode(f *testing.F) {
	b, _ := json.Marshal(sample())
	f.Add(b)
	f.Add([]byte(`{"schema":1,"phase":"idle"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := Decode(data)
		if err != nil {
			return
		}
		out, err := json.Marshal(j)
		if err != nil {
			t.Fatalf("marshal decoded journal: %v", err)
		}
		if _, err := Decode(out); err != nil {
			t.Fatalf("re-decode of %s: %v", out, err)
		}
	})
}
