//go:build (386 || amd64 || arm64) && linux

package mitigate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
)

// Installed implements InstalledLister: the policy directories under
// Root.
func (e *BPFEnforcer) Installed() ([]string, error) {
	ents, err := os.ReadDir(e.Root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mitigate: %w", err)
	}
	var ids []string
	for _, ent := range ents {
		if ent.IsDir() {
			ids = append(ids, ent.Name())
		}
	}
	return ids, nil
}

type ringReader struct {
	m *ebpf.Map
	r *ringbuf.Reader
}

func (r *ringReader) Read() ([]byte, error) {
	rec, err := r.r.Read()
	if err != nil {
		return nil, err
	}
	return rec.RawSample, nil
}

func (r *ringReader) Close() error {
	return errors.Join(r.r.Close(), r.m.Close())
}

func (e *BPFEnforcer) openEvents(id string) (recordReader, error) {
	m, err := ebpf.LoadPinnedMap(filepath.Join(e.dir(id), "map_kroll_events"), nil)
	if err != nil {
		return nil, fmt.Errorf("mitigate: %s: %w", id, err)
	}
	r, err := ringbuf.NewReader(m)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("mitigate: %s: events: %w", id, err)
	}
	return &ringReader{m: m, r: r}, nil
}
