package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/agent/journal"
	"github.com/kroll-dev/kroll/agent/running"
	"github.com/kroll-dev/kroll/internal/testcoord"
	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/release"
	"github.com/kroll-dev/kroll/pkg/signing"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// bundle returns a release bundle (.tar.gz) holding one kernel image.
func bundle(t *testing.T, kernel string) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, body := range map[string][]byte{"vmlinuz-" + kernel: []byte("not really a kernel"), "initrd.img-" + kernel: []byte("not really an initrd")} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// TestRunDryRun runs the daemon on this machine against a real coordinator
// in dry-run mode (the default): it registers, receives the target
// release, stages it over HTTP, takes and gives back the slot, never
// boots, and records the release as done in dry-run.
func TestRunDryRun(t *testing.T) {
	cur, err := running.ProcFS{}.Version()
	if err != nil {
		t.Fatal(err)
	}
	up, ok := cur.Upstream()
	if !ok {
		t.Fatalf("running kernel %s hides its upstream version", cur)
	}
	patch, _ := cur.Patch()
	newer := fmt.Sprintf("%d.%d.%d", cur.Major(), cur.Minor(), patch+1)
	kernel := newer + "-kroll"
	_ = up

	dir := t.TempDir()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
	pub, err := signing.MarshalPublicKey(priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("release.pub", pub)
	write("agent.token", []byte(testcoord.AgentToken+"\n"))
	art := bundle(t, kernel)
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(art) }))
	defer files.Close()

	coord := testcoord.Start(t, testcoord.Options{ReleaseKeys: []ed25519.PublicKey{priv.Public().(ed25519.PublicKey)}})
	ctx := t.Context()
	sum := sha256.Sum256(art)
	m := release.Manifest{ID: "dry.1", Line: cur.Line(), KernelVersion: kernel, UpstreamVersion: newer, Kind: release.KindBundle,
		Artifacts: []release.Artifact{{Name: "kernel.tar.gz", URL: files.URL + "/kernel.tar.gz", Size: int64(len(art)), SHA256: hex.EncodeToString(sum[:])}},
		Created:   time.Now().UTC().Truncate(time.Second)}
	canon, _ := m.Canonical()
	sig, err := release.SignManifest(priv, m)
	if err != nil {
		t.Fatal(err)
	}
	one, target := 1, m.ID
	if _, err := coord.Client.SetDatacenter(ctx, "lab1", wire.DatacenterUpdate{SlotLimit: &one}); err != nil {
		t.Fatal(err)
	}
	if _, err := coord.Client.AddRelease(ctx, wire.ReleaseAddRequest{Manifest: canon, Signature: sig.Marshal()}); err != nil {
		t.Fatal(err)
	}
	if _, err := coord.Client.SetDatacenter(ctx, "lab1", wire.DatacenterUpdate{TargetRelease: &target}); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	metricsAddr := freeAddr(t)
	cfg := write("agent.toml", []byte(fmt.Sprintf(`host_id = "host1"
datacenter = "lab1"
state_dir = %q
[coordinator]
urls = [%q]
token_file = %q
[trust]
release_keys = [%q]
[timing]
retry_interval = "200ms"
heartbeat_interval = "200ms"
[metrics]
listen = %q
`, state, coord.URL, filepath.Join(dir, "agent.token"), filepath.Join(dir, "release.pub"), metricsAddr)))

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var stderr bytes.Buffer
	env := cli.Env{Name: "kroll-agent", Stdout: &bytes.Buffer{}, Stderr: &stderr, Getenv: func(string) string { return "" }}
	errc := make(chan error, 1)
	go func() { errc <- run(runCtx, env, []string{"run", "--config", cfg}) }()

	deadline := time.Now().Add(30 * time.Second)
	var j *journal.Journal
	for {
		if data, err := os.ReadFile(filepath.Join(state, journal.FileName)); err == nil {
			if j, err = journal.Decode(data); err == nil && j.Done["dry.1"] != "" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no dry run within 30s; journal %+v; log:\n%s", j, stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	checkAgentMetrics(t, "http://"+metricsAddr+"/metrics")
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("run: %v", err)
	}
	if j.Done["dry.1"] != "dry-run" || j.Phase != wire.PhaseIdle || j.Slot != nil {
		t.Fatalf("journal %+v", j)
	}
	staged := filepath.Join(state, "releases", "dry.1", "root", "vmlinuz-"+kernel)
	if _, err := os.Stat(staged); err != nil {
		t.Fatalf("staged kernel: %v", err)
	}
	h, err := coord.Client.Host(ctx, "host1")
	if err != nil {
		t.Fatal(err)
	}
	if h.Slot != nil || h.Phase != wire.PhaseIdle || h.Kernel != cur.String() {
		t.Fatalf("coordinator's view: %+v", h)
	}
	log := stderr.String()
	for _, want := range []string{"dry-run: no boot performed", `"to":"rebooting"`, "slot granted"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}

	// status prints the journal.
	var out bytes.Buffer
	env.Stdout = &out
	if err := run(ctx, env, []string{"status", "--config", cfg}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "phase:     idle") || !strings.Contains(out.String(), "dry.1: dry-run") {
		t.Errorf("status:\n%s", out.String())
	}
	// reset refuses unless failed.
	if err := run(ctx, env, []string{"reset", "--config", cfg}); err == nil || !strings.Contains(err.Error(), "not failed") {
		t.Errorf("reset of an idle agent: %v", err)
	}
}

func TestStageCommand(t *testing.T) {
	dir := t.TempDir()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, ed25519.SeedSize))
	pub, _ := signing.MarshalPublicKey(priv.Public().(ed25519.PublicKey))
	os.WriteFile(filepath.Join(dir, "release.pub"), pub, 0o600)
	art := bundle(t, "6.1.0-99-amd64")
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(art) }))
	defer files.Close()
	sum := sha256.Sum256(art)
	m := release.Manifest{ID: "s.1", Line: "6.1", KernelVersion: "6.1.0-99-amd64", UpstreamVersion: "6.1.250", Kind: release.KindBundle,
		Artifacts: []release.Artifact{{Name: "k.tar.gz", URL: files.URL + "/k.tar.gz", Size: int64(len(art)), SHA256: hex.EncodeToString(sum[:])}},
		Created:   time.Now().UTC().Truncate(time.Second)}
	canon, _ := m.Canonical()
	sig, _ := release.SignManifest(priv, m)
	os.WriteFile(filepath.Join(dir, "m.json"), canon, 0o600)
	os.WriteFile(filepath.Join(dir, "m.json.sig"), sig.Marshal(), 0o600)
	cfg := filepath.Join(dir, "agent.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("host_id = \"h\"\ndatacenter = \"d\"\nkernel_line = \"6.1\"\nstate_dir = %q\n[coordinator]\nurls = [\"http://127.0.0.1:1\"]\n[trust]\nrelease_keys = [%q]\n",
		filepath.Join(dir, "state"), filepath.Join(dir, "release.pub"))), 0o600)

	var out, errb bytes.Buffer
	env := cli.Env{Name: "kroll-agent", Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
	if err := run(t.Context(), env, []string{"stage", "--config", cfg, filepath.Join(dir, "m.json")}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "staged s.1: kernel 6.1.0-99-amd64") {
		t.Fatalf("stdout %q", out.String())
	}
	// A tampered manifest is refused with one clear error.
	os.WriteFile(filepath.Join(dir, "m.json"), bytes.Replace(canon, []byte("6.1.0-99"), []byte("6.1.0-98"), 1), 0o600)
	err := run(t.Context(), env, []string{"stage", "--config", cfg, filepath.Join(dir, "m.json")})
	if err == nil || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("tampered manifest: %v", err)
	}
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// checkAgentMetrics scrapes the daemon's /metrics.
func checkAgentMetrics(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	for _, want := range []string{`kroll_build_info{binary="kroll-agent",`, `kroll_agent_phase{phase="idle"} 1`,
		"kroll_agent_phase_timestamp_seconds ", `kroll_agent_heartbeats_total{result="ok"}`, `kroll_agent_reboots_total{method="dry-run"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("agent /metrics lacks %q", want)
		}
	}
}
