//go:build !((386 || amd64 || arm64) && linux)

package mitigate

import (
	"context"
	"fmt"

	"github.com/kroll-dev/kroll/bpf"
	"github.com/kroll-dev/kroll/pkg/policy"
)

// BPFEnforcer is unavailable on this platform.
type BPFEnforcer struct {
	Root string
}

// NewBPFEnforcer returns an Enforcer that reports bpf-lsm unavailable.
func NewBPFEnforcer(root string) *BPFEnforcer { return &BPFEnforcer{Root: root} }

var errPlatform = fmt.Errorf("%w: bpf-lsm mitigations need linux on amd64 or arm64", bpf.ErrUnavailable)

// Available implements Enforcer.
func (e *BPFEnforcer) Available(context.Context) error { return errPlatform }

// Install implements Enforcer.
func (e *BPFEnforcer) Install(context.Context, policy.Verified) ([]string, error) {
	return nil, errPlatform
}

// Read implements Enforcer.
func (e *BPFEnforcer) Read(id string) (bpf.Mode, bpf.Counters, error) {
	return 0, bpf.Counters{}, fmt.Errorf("mitigate: %s: %w", id, ErrNotInstalled)
}

// Uninstall implements Enforcer.
func (e *BPFEnforcer) Uninstall(string) error { return nil }
