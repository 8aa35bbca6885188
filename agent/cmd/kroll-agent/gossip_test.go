package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"
)

func TestReadKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		return p
	}
	good := write("k1", base64.StdEncoding.EncodeToString(make([]byte, 32))+"\n")
	short := write("k2", base64.StdEncoding.EncodeToString(make([]byte, 20)))
	junk := write("k3", "not base64!")
	if ks, err := readKeys([]string{good}); err != nil || len(ks) != 1 || len(ks[0]) != 32 {
		t.Fatalf("good key: %v %v", ks, err)
	}
	for _, p := range []string{short, junk, filepath.Join(dir, "missing")} {
		if _, err := readKeys([]string{p}); err == nil {
			t.Errorf("%s accepted", p)
		}
	}
}
