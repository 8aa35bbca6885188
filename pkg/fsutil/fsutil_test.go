package fsutil

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	for _, tc := range []struct {
		name      string
		data      string
		perm      os.FileMode
		exclusive bool
		wantErr   error
		want      string
	}{
		{"create", "one", 0o600, false, nil, "one"},
		{"replace", "two", 0o644, false, nil, "two"},
		{"exclusive-refuses-existing", "three", 0o644, true, fs.ErrExist, "two"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := WriteFileAtomic(p, []byte(tc.data), tc.perm, tc.exclusive)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			got, _ := os.ReadFile(p)
			if string(got) != tc.want {
				t.Errorf("content %q, want %q", got, tc.want)
			}
			if st, _ := os.Stat(p); err == nil && st.Mode().Perm() != tc.perm {
				t.Errorf("mode %v, want %v", st.Mode().Perm(), tc.perm)
			}
			left, _ := filepath.Glob(filepath.Join(dir, ".f.tmp-*"))
			if len(left) != 0 {
				t.Errorf("temporary files left behind: %v", left)
			}
		})
	}
	t.Run("exclusive-creates", func(t *testing.T) {
		q := filepath.Join(dir, "g")
		if err := WriteFileAtomic(q, []byte("x"), 0o600, true); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(q); string(got) != "x" {
			t.Errorf("content %q", got)
		}
	})
	t.Run("missing-dir", func(t *testing.T) {
		if err := WriteFileAtomic(filepath.Join(dir, "no", "f"), nil, 0o600, false); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("err = %v, want not-exist", err)
		}
	})
}
