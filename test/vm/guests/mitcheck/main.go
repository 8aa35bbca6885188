// Command mitcheck runs inside a VM (see agent/mitigate's vm_test.go) and
// proves that mitigate.Manager enforces Copy Fail and that the enforcement
// outlives the process: it runs itself as "apply" (applies the policy and
// exits) and then as "check" (a new process and Manager: adopts the pins,
// re-applies a newer version in place, lists, removes) and finally as
// "audit" (applies an audit-mode policy and watches the event of an
// allowed bind: log line and Prometheus counter).
package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/kroll-dev/kroll/agent/mitigate"
	"github.com/kroll-dev/kroll/bpf"
	"github.com/kroll-dev/kroll/pkg/policy"
	"github.com/kroll-dev/kroll/pkg/signing"
	"github.com/kroll-dev/kroll/test/vm/guest"
)

const (
	auditID  = "copy-fail-audit"
	nobody   = 65534
	copyFail = "authencesn(hmac(sha256),cbc(aes))"
	work     = "/tmp/mit"
	stateDir = "/tmp/mit/state"
	pubPath  = "/tmp/mit/trusted.pub"
)

func main() {
	if len(os.Args) < 2 {
		orchestrate()
		return
	}
	switch os.Args[1] {
	case "bind":
		os.Stdout.WriteString(algBind())
	case "apply":
		phaseApply()
	case "check":
		phaseCheck()
	case "audit":
		phaseAudit()
	default:
		guest.Fail("unknown phase %q", os.Args[1])
	}
}

func orchestrate() {
	check(os.MkdirAll(work, 0o755), "mkdir")
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	check(err, "key")
	pem, err := signing.MarshalPublicKey(pub)
	check(err, "marshal key")
	check(os.WriteFile(pubPath, pem, 0o644), "write key")
	for v := int64(1); v <= 3; v++ {
		p := policy.Policy{
			ID: "copy-fail", CVE: "CVE-2026-31431", Version: v,
			Kind: policy.KindSocketFamily, Mode: policy.ModeEnforce,
			Params: policy.Params{
				Family: "AF_ALG", Operations: []policy.Operation{policy.OpBind},
				// Missing on this host: a warning, not fatal.
				AllowExe: []string{"/usr/sbin/charon"},
			},
			AppliesTo: policy.AppliesTo{FixedIn: []string{"6.1.999", "6.12.999"}},
			Expires:   time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second),
		}
		if v == 2 {
			p.Params.Operations = append(p.Params.Operations, policy.OpCreate)
		}
		if v == 3 {
			// copy-fail-v3.json: the audit phase's policy.
			p.ID, p.Version, p.Mode = auditID, 1, policy.ModeAudit
		}
		doc, err := p.Canonical()
		check(err, "canonical")
		sig, err := policy.Sign(priv, p)
		check(err, "sign")
		path := work + "/copy-fail-v" + string(rune('0'+v)) + ".json"
		check(os.WriteFile(path, doc, 0o644), "write policy")
		check(os.WriteFile(path+".sig", sig.Marshal(), 0o644), "write sig")
	}
	b, _ := os.ReadFile("/sys/kernel/security/lsm")
	guest.Report("lsm", strings.TrimSpace(string(b)))
	guest.Report("bind_before", bindAsNobody())
	for _, phase := range []string{"apply", "check", "audit"} {
		cmd := exec.Command(self(), phase)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			guest.Fail("phase %s: %v", phase, err)
		}
	}
}

func manager() *mitigate.Manager {
	pub, err := signing.LoadPublicKey(pubPath)
	check(err, "load key")
	m, err := mitigate.New(mitigate.Config{Trusted: []ed25519.PublicKey{pub}, StateDir: stateDir})
	check(err, "manager")
	return m
}

func apply(m *mitigate.Manager, version string) []mitigate.Status {
	path := work + "/copy-fail-v" + version + ".json"
	doc, err := os.ReadFile(path)
	check(err, "read policy")
	sig, err := os.ReadFile(path + ".sig")
	check(err, "read sig")
	sts, err := m.Apply(guestCtx(), []mitigate.SignedPolicy{{Source: path, Document: doc, Signature: sig}})
	check(err, "apply v"+version)
	return sts
}

func phaseApply() {
	m := manager()
	guest.Report("apply_v1", apply(m, "1"))
	guest.Report("bind_enforced", bindAsNobody())
	guest.Report("apply_pid", os.Getpid())
}

func phaseCheck() {
	guest.Report("check_pid", os.Getpid())
	guest.Report("bind_after_exit", bindAsNobody())
	m := manager()
	ls, err := m.List(guestCtx())
	check(err, "list")
	guest.Report("list", ls)
	guest.Report("progs_before", countPrograms())
	guest.Report("apply_v2", apply(m, "2"))
	guest.Report("progs_after", countPrograms())
	guest.Report("socket_v2", socketAsNobody())
	check(m.Remove(guestCtx(), "copy-fail"), "remove")
	guest.Report("bind_removed", bindAsNobody())
	ls, err = m.List(guestCtx())
	check(err, "list")
	guest.Report("list_removed", ls)
	_, err = os.Stat(mitigate.DefaultBPFFS + "/copy-fail")
	guest.Report("pins_removed", errors.Is(err, os.ErrNotExist))
}

// phaseAudit applies the Copy Fail policy in audit mode, watches its
// events while an unprivileged bind succeeds, and reports the event's log
// line, the counters and this executable's key, then removes the policy.
func phaseAudit() {
	m := manager()
	guest.Report("apply_audit", apply(m, "3"))
	reg := prometheus.NewRegistry()
	metrics := mitigate.NewMetrics(reg)
	logs := &lineBuffer{}
	logger := slog.New(slog.NewJSONHandler(io.MultiWriter(logs, os.Stdout), nil))
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan error, 1)
	go func() { watched <- m.Watch(ctx, logger, metrics) }()
	guest.Report("bind_audit", bindAsNobody())
	var event map[string]any
	for deadline := time.Now().Add(30 * time.Second); event == nil && time.Now().Before(deadline); {
		for _, line := range logs.lines() {
			var e map[string]any
			if json.Unmarshal([]byte(line), &e) == nil && e["msg"] == "mitigation event" && e["policy"] == auditID {
				event = e
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	check(<-watched, "watch")
	guest.Report("audit_event", event)
	k, err := bpf.ExeKey(self())
	check(err, "exe key")
	guest.Report("exe", mitigate.ExeLabel(k))
	var st syscall.Stat_t
	check(syscall.Stat(self(), &st), "stat self")
	guest.Report("exe_ino", st.Ino)
	mfs, err := reg.Gather()
	check(err, "gather")
	counters := map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			key := mf.GetName()
			for _, lp := range mt.GetLabel() {
				key += "," + lp.GetName() + "=" + lp.GetValue()
			}
			counters[key] = mt.GetCounter().GetValue()
		}
	}
	guest.Report("audit_counters", counters)
	check(m.Remove(guestCtx(), auditID), "remove audit")
}

// lineBuffer collects log lines.
type lineBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lineBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Split(b.buf.String(), "\n")
}

// countPrograms counts the loaded socket-family programs by name
// (kroll_socket_create/bind, truncated by the kernel to 15 bytes).
func countPrograms() map[string]int {
	n := map[string]int{}
	id := ebpf.ProgramID(0)
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			break
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		if info, err := p.Info(); err == nil && strings.HasPrefix(info.Name, "kroll_socket") {
			n[info.Name]++
		}
		p.Close()
	}
	return n
}

func bindAsNobody() string   { return asNobody("bind") }
func socketAsNobody() string { return asNobody("socket") }

func asNobody(action string) string {
	cmd := exec.Command(self(), "bind")
	if action == "socket" {
		cmd.Env = append(os.Environ(), "MITCHECK_SOCKET_ONLY=1")
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "helper: " + err.Error()
	}
	return string(out)
}

// algBind creates an AF_ALG socket and binds it to Copy Fail's algorithm.
func algBind() string {
	fd, err := unix.Socket(unix.AF_ALG, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "socket: " + errString(err)
	}
	defer unix.Close(fd)
	if os.Getenv("MITCHECK_SOCKET_ONLY") != "" {
		return "ok"
	}
	if err := unix.Bind(fd, &unix.SockaddrALG{Type: "aead", Name: copyFail}); err != nil {
		return "bind: " + errString(err)
	}
	return "ok"
}

func errString(err error) string {
	var errno unix.Errno
	if errors.As(err, &errno) {
		if n := unix.ErrnoName(errno); n != "" {
			return n
		}
	}
	return err.Error()
}

func check(err error, what string) {
	if err != nil {
		guest.Fail("%s: %v", what, err)
	}
}

func guestCtx() context.Context { return context.Background() }

func self() string {
	exe, err := os.Executable()
	check(err, "executable")
	return exe
}
