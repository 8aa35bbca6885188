package tomlfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDecode(t *testing.T) {
	type conf struct {
		Name string `toml:"name"`
		Sub  struct {
			Wait Duration `toml:"wait"`
		} `toml:"sub"`
	}
	for _, tc := range []struct{ name, doc, err string }{
		{"ok", "name = \"x\"\n[sub]\nwait = \"90s\"\n", ""},
		{"unknown", "name = \"x\"\nnmae = \"y\"\n", "unknown keys: nmae"},
		{"nested unknown", "[sub]\nwiat = \"1s\"\n", "unknown keys: sub.wiat"},
		{"negative", "[sub]\nwait = \"-1s\"\n", "must be positive"},
		{"zero", "[sub]\nwait = \"0s\"\n", "must be positive"},
		{"garbage", "[sub]\nwait = \"soon\"\n", "invalid duration"},
		{"syntax", "name = \n", "config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.toml")
			os.WriteFile(p, []byte(tc.doc), 0o600)
			var c conf
			err := Decode(p, &c)
			if tc.err == "" {
				if err != nil || c.Sub.Wait.Duration != 90*time.Second {
					t.Fatalf("%+v %v", c, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
		})
	}
}
