package health

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	debRelease = "6.1.0-56-amd64"
	debVersion = "Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org) " +
		"(x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) " +
		"#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-10-02)\n"
	bootA = "0f6c1c84-5a8e-4b8e-9f57-3c2d7e1a9b10"
	bootB = "7d2e9a61-1c3b-4f0a-8e6d-2b5c4a3f1e09"
)

// fakeProc writes files below a temporary proc dir and returns it.
func fakeProc(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// debianProc is a fake proc dir of a Debian host that booted bootB and
// whose PID 1 is not systemd.
func debianProc(t *testing.T) string {
	return fakeProc(t, map[string]string{
		"sys/kernel/osrelease":      debRelease + "\n",
		"version":                   debVersion,
		"sys/kernel/random/boot_id": bootB + "\n",
		"1/comm":                    "init\n",
	})
}

// fakeSystemd returns the states in order (the last one repeats) and the
// unit states from units.
type fakeSystemd struct {
	mu       sync.Mutex
	states   []string
	stateErr []error // parallel to states; nil entries mean no error
	units    map[string]string
	unitErr  error
	calls    int
}

func (f *fakeSystemd) SystemState(ctx context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := min(f.calls, len(f.states)-1)
	f.calls++
	if i < len(f.stateErr) && f.stateErr[i] != nil {
		return "", f.stateErr[i]
	}
	return f.states[i], nil
}

func (f *fakeSystemd) UnitActiveState(ctx context.Context, unit string) (string, error) {
	if f.unitErr != nil {
		return "", f.unitErr
	}
	s, ok := f.units[unit]
	if !ok {
		return "inactive", nil
	}
	return s, nil
}

func (f *fakeSystemd) stateCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// fakePolicies is a PolicyLister.
type fakePolicies struct {
	inForce map[string]bool
	err     error
}

func (f fakePolicies) InForce(ctx context.Context) (map[string]bool, error) {
	return f.inForce, f.err
}

// newTestChecker is New with a short poll interval.
func newTestChecker(t *testing.T, cfg Config) *Checker {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	c.pollInterval = 5 * time.Millisecond
	return c
}

// find returns the check called name.
func find(t *testing.T, res Result, name string) Check {
	t.Helper()
	for _, c := range res.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %q in %+v", name, res.Checks)
	return Check{}
}

func names(res Result) []string {
	var n []string
	for _, c := range res.Checks {
		n = append(n, c.Name)
	}
	return n
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"zero config", Config{}, ""},
		{"negative settle", Config{SettleTimeout: -time.Second}, "negative settle timeout"},
		{"empty unit", Config{RequiredUnits: []string{" "}}, "empty required unit"},
		{"duplicate unit", Config{RequiredUnits: []string{"a.service", "a.service"}}, "listed twice"},
		{"unnamed command", Config{Commands: []CommandCheck{{Command: []string{"/bin/true"}}}}, "has no name"},
		{"empty argv", Config{Commands: []CommandCheck{{Name: "x"}}}, "has no command"},
		{"duplicate command", Config{Commands: []CommandCheck{
			{Name: "x", Command: []string{"/bin/true"}}, {Name: "x", Command: []string{"/bin/true"}},
		}}, "used twice"},
		{"negative timeout", Config{Commands: []CommandCheck{
			{Name: "x", Command: []string{"/bin/true"}, Timeout: -1},
		}}, "negative timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	c, err := New(Config{Commands: []CommandCheck{
		{Name: "default", Command: []string{"/bin/true"}},
		{Name: "explicit", Command: []string{"/bin/true"}, Timeout: time.Second},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if c.procDir != DefaultProcDir || c.settleTimeout != DefaultSettleTimeout || c.pollInterval != time.Second {
		t.Errorf("defaults: procDir %q settle %v poll %v", c.procDir, c.settleTimeout, c.pollInterval)
	}
	if got := []time.Duration{c.commands[0].Timeout, c.commands[1].Timeout}; !reflect.DeepEqual(got, []time.Duration{DefaultCommandTimeout, time.Second}) {
		t.Errorf("command timeouts = %v", got)
	}
}

func TestCheckMisuse(t *testing.T) {
	tests := []struct {
		name    string
		want    Expect
		wantErr string
	}{
		{"empty release", Expect{}, "expected kernel release is empty"},
		{"bad upstream", Expect{KernelRelease: debRelease, UpstreamVersion: "six"}, "expected upstream version"},
		{"upstream is an ABI name", Expect{KernelRelease: debRelease, UpstreamVersion: debRelease}, "does not name an upstream version"},
		{"empty policy", Expect{KernelRelease: debRelease, Policies: []string{""}}, "empty expected policy"},
		{"duplicate policy", Expect{KernelRelease: debRelease, Policies: []string{"p", "p"}}, "listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestChecker(t, Config{ProcDir: debianProc(t)})
			res, err := c.Check(context.Background(), tt.want)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Check error = %v, want it to contain %q", err, tt.wantErr)
			}
			if res.Healthy || len(res.Checks) != 0 {
				t.Errorf("Result = %+v, want empty", res)
			}
		})
	}
}

func TestKernelCheck(t *testing.T) {
	tests := []struct {
		name       string
		files      map[string]string
		release    string
		upstream   string
		wantOK     bool
		wantDetail string
	}{
		{"release matches", nil, debRelease, "", true, `running kernel "6.1.0-56-amd64"`},
		{"release differs", nil, "6.1.0-55-amd64", "", false, `running kernel "6.1.0-56-amd64", want "6.1.0-55-amd64"`},
		{"upstream matches", nil, debRelease, "6.1.192", true, "upstream 6.1.192"},
		{"upstream differs", nil, debRelease, "6.1.191", false, "is upstream 6.1.192, want 6.1.191"},
		{"upstream short form", map[string]string{
			"sys/kernel/osrelease": "6.12.0\n",
			"version":              "Linux version 6.12.0 (b@h) (gcc) #1 SMP\n",
		}, "6.12.0", "6.12", true, "upstream 6.12.0"},
		{"upstream unknown", map[string]string{
			"version": "Linux version 6.1.0-56-amd64 (b@h) (gcc) #1 SMP PREEMPT_DYNAMIC\n",
		}, debRelease, "6.1.192", false, "does not reveal its upstream version"},
		{"proc version names another release", map[string]string{
			"version": strings.Replace(debVersion, "6.1.0-56-amd64", "6.1.0-55-amd64", 1),
		}, debRelease, "6.1.192", false, `/proc/version names release "6.1.0-55-amd64"`},
		{"proc version garbage", map[string]string{"version": "hello\n"}, debRelease, "6.1.192", false, "cannot be parsed"},
		{"upstream not checked without proc version", map[string]string{"version": "hello\n"}, debRelease, "", true, "running kernel"},
		{"empty osrelease", map[string]string{"sys/kernel/osrelease": ""}, debRelease, "", false, "osrelease is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{
				"sys/kernel/osrelease":      debRelease + "\n",
				"version":                   debVersion,
				"sys/kernel/random/boot_id": bootB,
			}
			for k, v := range tt.files {
				files[k] = v
			}
			c := newTestChecker(t, Config{ProcDir: fakeProc(t, files)})
			res, err := c.Check(context.Background(), Expect{KernelRelease: tt.release, UpstreamVersion: tt.upstream})
			if err != nil {
				t.Fatal(err)
			}
			k := find(t, res, "kernel")
			if k.OK != tt.wantOK || !strings.Contains(k.Detail, tt.wantDetail) {
				t.Errorf("kernel check = %+v, want OK %v and detail containing %q", k, tt.wantOK, tt.wantDetail)
			}
			if res.Healthy != tt.wantOK {
				t.Errorf("Healthy = %v, want %v (%s)", res.Healthy, tt.wantOK, res.Summary())
			}
		})
	}
}

func TestKernelCheckMissingFile(t *testing.T) {
	c := newTestChecker(t, Config{ProcDir: t.TempDir()})
	res, err := c.Check(context.Background(), Expect{KernelRelease: debRelease})
	if err != nil {
		t.Fatal(err)
	}
	k := find(t, res, "kernel")
	if k.OK || !strings.Contains(k.Detail, "osrelease") {
		t.Errorf("kernel check = %+v, want a failure naming osrelease", k)
	}
	b := find(t, res, "boot-id")
	if b.OK || !strings.Contains(b.Detail, "boot_id") {
		t.Errorf("boot-id check = %+v, want a failure naming boot_id", b)
	}
}

func TestBootIDCheck(t *testing.T) {
	tests := []struct {
		name       string
		current    string
		previous   string
		wantOK     bool
		wantDetail string
	}{
		{"changed", bootB + "\n", bootA, true, "was " + bootA},
		{"unchanged", bootB + "\n", bootB, false, "did not reboot"},
		{"unchanged other case and spaces", bootB, " " + strings.ToUpper(bootB) + "\n", false, "did not reboot"},
		{"not checked", bootB, "", true, "no previous boot id"},
		{"empty current", "\n", bootA, false, `boot id "" in`},
		{"current not a UUID", "boot-b\n", bootA, false, "is not a UUID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proc := fakeProc(t, map[string]string{
				"sys/kernel/osrelease":      debRelease,
				"sys/kernel/random/boot_id": tt.current,
			})
			c := newTestChecker(t, Config{ProcDir: proc})
			res, err := c.Check(context.Background(), Expect{KernelRelease: debRelease, PreviousBootID: tt.previous})
			if err != nil {
				t.Fatal(err)
			}
			b := find(t, res, "boot-id")
			if b.OK != tt.wantOK || !strings.Contains(b.Detail, tt.wantDetail) {
				t.Errorf("boot-id check = %+v, want OK %v and detail containing %q", b, tt.wantOK, tt.wantDetail)
			}
		})
	}
}

func TestSystemdCheck(t *testing.T) {
	errBus := errors.New("bus not up yet")
	tests := []struct {
		name       string
		states     []string
		stateErr   []error
		settle     time.Duration
		wantOK     bool
		wantDetail string
		minCalls   int
	}{
		{"running", []string{"running"}, nil, time.Second, true, `"running"`, 1},
		{"starting then running", []string{"starting", "starting", "running"}, nil, 5 * time.Second, true, `"running"`, 3},
		{"initializing then running", []string{"initializing", "starting", "running"}, nil, 5 * time.Second, true, `"running"`, 3},
		{"starting then degraded", []string{"starting", "degraded"}, nil, 5 * time.Second, false, `system state "degraded", want "running"`, 2},
		{"degraded", []string{"degraded"}, nil, 5 * time.Second, false, `"degraded"`, 1},
		{"maintenance", []string{"maintenance"}, nil, 5 * time.Second, false, `"maintenance"`, 1},
		{"stopping", []string{"stopping"}, nil, 5 * time.Second, false, `"stopping"`, 1},
		{"settle timeout", []string{"starting"}, nil, 60 * time.Millisecond, false, `system state still "starting" after 60ms`, 2},
		{"error then running", []string{"", "running"}, []error{errBus}, 5 * time.Second, true, `"running"`, 2},
		{"error until timeout", []string{""}, []error{errBus}, 60 * time.Millisecond, false, "bus not up yet after 60ms", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sd := &fakeSystemd{states: tt.states, stateErr: tt.stateErr}
			c := newTestChecker(t, Config{ProcDir: debianProc(t), Systemd: sd, SettleTimeout: tt.settle})
			start := time.Now()
			res, err := c.Check(context.Background(), Expect{KernelRelease: debRelease})
			if err != nil {
				t.Fatal(err)
			}
			s := find(t, res, "systemd")
			if s.OK != tt.wantOK || !strings.Contains(s.Detail, tt.wantDetail) {
				t.Errorf("systemd check = %+v, want OK %v and detail containing %q", s, tt.wantOK, tt.wantDetail)
			}
			if got := sd.stateCalls(); got < tt.minCalls {
				t.Errorf("SystemState called %d times, want at least %d", got, tt.minCalls)
			}
			if res.Healthy != tt.wantOK {
				t.Errorf("Healthy = %v, want %v", res.Healthy, tt.wantOK)
			}
			if el := time.Since(start); el > 3*time.Second {
				t.Errorf("Check took %v", el)
			}
		})
	}
}

func TestSystemdAutoDetect(t *testing.T) {
	tests := []struct {
		name        string
		comm        string // "" = no 1/comm file
		connectErr  error
		units       []string
		wantDialed  bool
		wantOK      map[string]bool
		wantDetail  map[string]string
		wantHealthy bool
	}{
		{
			name: "systemd is PID 1", comm: "systemd\n", units: []string{"bird.service"},
			wantDialed: true, wantHealthy: true,
			wantOK:     map[string]bool{"systemd": true, "unit:bird.service": true},
			wantDetail: map[string]string{"systemd": `"running"`, "unit:bird.service": `"active"`},
		},
		{
			name: "other PID 1", comm: "process_api\n",
			wantDialed: false, wantHealthy: true,
			wantOK:     map[string]bool{"systemd": true},
			wantDetail: map[string]string{"systemd": "systemd not running"},
		},
		{
			name:       "no comm file",
			wantDialed: false, wantHealthy: true,
			wantOK:     map[string]bool{"systemd": true},
			wantDetail: map[string]string{"systemd": "systemd not running"},
		},
		{
			name: "units required without systemd", comm: "init\n", units: []string{"bird.service"},
			wantDialed: false, wantHealthy: false,
			wantOK:     map[string]bool{"systemd": true, "unit:bird.service": false},
			wantDetail: map[string]string{"systemd": "systemd not running", "unit:bird.service": "systemd not running"},
		},
		{
			name: "systemd is PID 1 but its bus never answers", comm: "systemd\n", units: []string{"bird.service"},
			connectErr: errors.New("no bus socket"),
			wantDialed: true, wantHealthy: false,
			wantOK:     map[string]bool{"systemd": false, "unit:bird.service": false},
			wantDetail: map[string]string{"systemd": "no bus socket after", "unit:bird.service": "no connection to systemd"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{
				"sys/kernel/osrelease":      debRelease,
				"sys/kernel/random/boot_id": bootB,
			}
			if tt.comm != "" {
				files["1/comm"] = tt.comm
			}
			c := newTestChecker(t, Config{ProcDir: fakeProc(t, files), RequiredUnits: tt.units, SettleTimeout: 50 * time.Millisecond})
			var mu sync.Mutex
			dialed := false
			c.newSystemd = func(ctx context.Context) (Systemd, error) {
				mu.Lock()
				defer mu.Unlock()
				dialed = true
				if tt.connectErr != nil {
					return nil, tt.connectErr
				}
				return &fakeSystemd{states: []string{"running"}, units: map[string]string{"bird.service": "active"}}, nil
			}
			res, err := c.Check(context.Background(), Expect{KernelRelease: debRelease})
			if err != nil {
				t.Fatal(err)
			}
			if dialed != tt.wantDialed {
				t.Errorf("NewSystemd called = %v, want %v", dialed, tt.wantDialed)
			}
			for name, ok := range tt.wantOK {
				ch := find(t, res, name)
				if ch.OK != ok || !strings.Contains(ch.Detail, tt.wantDetail[name]) {
					t.Errorf("check %s = %+v, want OK %v and detail containing %q", name, ch, ok, tt.wantDetail[name])
				}
			}
			if res.Healthy != tt.wantHealthy {
				t.Errorf("Healthy = %v, want %v (%s)", res.Healthy, tt.wantHealthy, res.Summary())
			}
		})
	}
}

func TestUnitChecks(t *testing.T) {
	tests := []struct {
		name       string
		units      map[string]string
		unitErr    error
		wantOK     bool
		wantDetail string
	}{
		{"active", map[string]string{"bird.service": "active"}, nil, true, `unit "active"`},
		{"failed", map[string]string{"bird.service": "failed"}, nil, false, `unit "failed", want "active"`},
		{"activating", map[string]string{"bird.service": "activating"}, nil, false, `"activating"`},
		{"unknown unit", nil, nil, false, `"inactive"`},
		{"query error", nil, errors.New("access denied"), false, "access denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sd := &fakeSystemd{states: []string{"running"}, units: tt.units, unitErr: tt.unitErr}
			c := newTestChecker(t, Config{ProcDir: debianProc(t), Systemd: sd, RequiredUnits: []string{"bird.service"}})
			res, err := c.Check(context.Background(), Expect{KernelRelease: debRelease})
			if err != nil {
				t.Fatal(err)
			}
			u := find(t, res, "unit:bird.service")
			if u.OK != tt.wantOK || !strings.Contains(u.Detail, tt.wantDetail) {
				t.Errorf("unit check = %+v, want OK %v and detail containing %q", u, tt.wantOK, tt.wantDetail)
			}
			if res.Healthy != tt.wantOK {
				t.Errorf("Healthy = %v, want %v", res.Healthy, tt.wantOK)
			}
		})
	}
}

func TestPolicyChecks(t *testing.T) {
	tests := []struct {
		name       string
		lister     PolicyLister
		want       []string
		wantOK     map[string]bool
		wantDetail string // of the first failed check
	}{
		{"none expected, no lister", nil, nil, map[string]bool{}, ""},
		{"no lister", nil, []string{"cve-2026-1"}, map[string]bool{"cve-2026-1": false}, "no policy lister configured"},
		{"all in force", fakePolicies{inForce: map[string]bool{"cve-2026-1": true, "cve-2026-2": true}},
			[]string{"cve-2026-1", "cve-2026-2"}, map[string]bool{"cve-2026-1": true, "cve-2026-2": true}, ""},
		{"one missing", fakePolicies{inForce: map[string]bool{"cve-2026-1": true, "cve-2026-2": false}},
			[]string{"cve-2026-1", "cve-2026-2"}, map[string]bool{"cve-2026-1": true, "cve-2026-2": false}, "not in force"},
		{"lister fails", fakePolicies{err: errors.New("bpffs not mounted")},
			[]string{"cve-2026-1"}, map[string]bool{"cve-2026-1": false}, "bpffs not mounted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestChecker(t, Config{ProcDir: debianProc(t), Policies: tt.lister})
			res, err := c.Check(context.Background(), Expect{KernelRelease: debRelease, Policies: tt.want})
			if err != nil {
				t.Fatal(err)
			}
			healthy := true
			for id, ok := range tt.wantOK {
				p := find(t, res, "policy:"+id)
				if p.OK != ok {
					t.Errorf("policy check %+v, want OK %v", p, ok)
				}
				if !ok && !strings.Contains(p.Detail, tt.wantDetail) {
					t.Errorf("policy check detail %q, want it to contain %q", p.Detail, tt.wantDetail)
				}
				healthy = healthy && ok
			}
			if got := len(res.Checks); got != 3+len(tt.want) {
				t.Errorf("%d checks (%v), want %d", got, names(res), 3+len(tt.want))
			}
			if res.Healthy != healthy {
				t.Errorf("Healthy = %v, want %v", res.Healthy, healthy)
			}
		})
	}
}

func TestCommandChecks(t *testing.T) {
	tests := []struct {
		name       string
		cmd        CommandCheck
		wantOK     bool
		wantDetail []string
		notDetail  string
	}{
		{"true", CommandCheck{Name: "c", Command: []string{"/bin/true"}}, true, []string{"exit status 0"}, ""},
		{"false", CommandCheck{Name: "c", Command: []string{"/bin/false"}}, false, []string{"exit status 1"}, ""},
		{"exit 3 with output", CommandCheck{Name: "c", Command: []string{"sh", "-c", "echo boom; exit 3"}}, false,
			[]string{"exit status 3", `output tail: "boom\n"`}, ""},
		{"stderr captured", CommandCheck{Name: "c", Command: []string{"sh", "-c", "echo out; echo err >&2; exit 2"}}, false,
			[]string{"exit status 2", `out\n`, `err\n`}, ""},
		{"only the output tail", CommandCheck{Name: "c", Command: []string{"sh", "-c", "seq 1 5000; exit 4"}}, false,
			[]string{"exit status 4", `4999\n5000\n"`}, `"1\n2\n`},
		{"no shell", CommandCheck{Name: "c", Command: []string{"/bin/echo", "$HOME;", "exit 1"}}, true, []string{"exit status 0"}, ""},
		{"killed by signal", CommandCheck{Name: "c", Command: []string{"sh", "-c", "kill -TERM $$"}}, false,
			[]string{"signal: terminated"}, ""},
		{"not found", CommandCheck{Name: "c", Command: []string{"/nonexistent/check"}}, false, []string{"no such file"}, ""},
		{"timeout", CommandCheck{Name: "c", Command: []string{"sh", "-c", "echo started; sleep 30"}, Timeout: 200 * time.Millisecond}, false,
			[]string{"timed out after 200ms, process group killed", "started"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestChecker(t, Config{ProcDir: debianProc(t), Commands: []CommandCheck{tt.cmd}})
			res, err := c.Check(context.Background(), Expect{KernelRelease: debRelease})
			if err != nil {
				t.Fatal(err)
			}
			ch := find(t, res, "command:c")
			if ch.OK != tt.wantOK {
				t.Errorf("command check = %+v, want OK %v", ch, tt.wantOK)
			}
			for _, w := range tt.wantDetail {
				if !strings.Contains(ch.Detail, w) {
					t.Errorf("detail %q does not contain %q", ch.Detail, w)
				}
			}
			if tt.notDetail != "" && strings.Contains(ch.Detail, tt.notDetail) {
				t.Errorf("detail %q contains %q", ch.Detail, tt.notDetail)
			}
			if strings.Contains(ch.Detail, "\n") {
				t.Errorf("detail %q spans lines", ch.Detail)
			}
			if ch.Duration > 10*time.Second {
				t.Errorf("command check took %v", ch.Duration)
			}
			if res.Healthy != tt.wantOK {
				t.Errorf("Healthy = %v, want %v", res.Healthy, tt.wantOK)
			}
		})
	}
}

// processGone reports whether pid no longer runs (it is gone or a zombie
// waiting for its new parent to reap it).
func processGone(pid string) bool {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && strings.HasPrefix(s[i+1:], " Z")
}

func TestCommandTimeoutKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	// The shell starts a child in the background and waits for it; the
	// timeout must kill the child too, not only the shell.
	script := `sleep 60 & echo $! > "$1"; echo child started; wait`
	c := newTestChecker(t, Config{ProcDir: debianProc(t), Commands: []CommandCheck{
		{Name: "hang", Command: []string{"sh", "-c", script, "sh", pidFile}, Timeout: 500 * time.Millisecond},
	}})
	res, err := c.Check(context.Background(), Expect{KernelRelease: debRelease})
	if err != nil {
		t.Fatal(err)
	}
	ch := find(t, res, "command:hang")
	if ch.OK || !strings.Contains(ch.Detail, "timed out") || !strings.Contains(ch.Detail, "child started") {
		t.Errorf("command check = %+v, want a timeout with the output", ch)
	}
	if ch.Duration > 5*time.Second {
		t.Errorf("check took %v, the timeout was 500ms", ch.Duration)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the child never started: %v", err)
	}
	pid := strings.TrimSpace(string(b))
	deadline := time.Now().Add(5 * time.Second)
	for !processGone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("child sleep %s still runs after the timeout", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCheckOrderAndSummary(t *testing.T) {
	sd := &fakeSystemd{states: []string{"starting", "degraded"}, units: map[string]string{"bird.service": "active", "kroll-agent.service": "failed"}}
	c := newTestChecker(t, Config{
		ProcDir:       debianProc(t),
		Systemd:       sd,
		RequiredUnits: []string{"bird.service", "kroll-agent.service"},
		Policies:      fakePolicies{inForce: map[string]bool{"p1": true}},
		Commands: []CommandCheck{
			{Name: "ok", Command: []string{"/bin/true"}},
			{Name: "boom", Command: []string{"sh", "-c", "echo boom; exit 3"}},
		},
	})
	res, err := c.Check(context.Background(), Expect{
		KernelRelease: debRelease, UpstreamVersion: "6.1.192", PreviousBootID: bootA, Policies: []string{"p1", "p2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	wantNames := []string{"kernel", "boot-id", "systemd", "unit:bird.service", "unit:kroll-agent.service",
		"policy:p1", "policy:p2", "command:ok", "command:boom"}
	if got := names(res); !reflect.DeepEqual(got, wantNames) {
		t.Fatalf("checks %v, want %v", got, wantNames)
	}
	wantOK := []bool{true, true, false, true, false, true, false, true, false}
	for i, ch := range res.Checks {
		if ch.OK != wantOK[i] {
			t.Errorf("check %s OK = %v, want %v (%s)", ch.Name, ch.OK, wantOK[i], ch.Detail)
		}
	}
	if res.Healthy {
		t.Error("Healthy with failed checks")
	}
	sum := res.Summary()
	for _, w := range []string{"unhealthy: 4 of 9 checks failed", `systemd (system state "degraded"`,
		"unit:kroll-agent.service", "policy:p2 (policy not in force)", "command:boom (exit status 3", "boom"} {
		if !strings.Contains(sum, w) {
			t.Errorf("Summary %q does not contain %q", sum, w)
		}
	}
	for _, no := range []string{"command:ok", "unit:bird.service", "policy:p1", "kernel"} {
		if strings.Contains(sum, no) {
			t.Errorf("Summary %q names the passed check %q", sum, no)
		}
	}
	if strings.ContainsAny(sum, "\r\n") {
		t.Errorf("Summary %q spans lines", sum)
	}
}

func TestSummary(t *testing.T) {
	tests := []struct {
		name string
		res  Result
		want string
	}{
		{"healthy", Result{Healthy: true, Checks: []Check{{Name: "kernel", OK: true}, {Name: "boot-id", OK: true}}},
			"healthy: all 2 checks passed"},
		{"one failure", Result{Checks: []Check{{Name: "kernel", OK: true}, {Name: "command:x", Detail: "exit status 1; output tail: \"a\nb\""}}},
			`unhealthy: 1 of 2 checks failed: command:x (exit status 1; output tail: "a b")`},
		{"not healthy without failures", Result{Checks: []Check{{Name: "kernel", OK: true}}},
			"unhealthy: no check recorded a failure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.res.Summary(); got != tt.want {
				t.Errorf("Summary = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestResultJSON(t *testing.T) {
	b, err := json.Marshal(Result{Healthy: true, Checks: []Check{{Name: "kernel", OK: true, Detail: "d", Duration: time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"healthy":true,"checks":[{"name":"kernel","ok":true,"detail":"d","duration":1000000}]}`
	if string(b) != want {
		t.Errorf("JSON %s, want %s", b, want)
	}
}

func TestCheckContextCanceled(t *testing.T) {
	tests := []struct {
		name  string
		cfg   func(*Config)
		delay time.Duration // cancel after delay; 0 = before Check
	}{
		{"before check, settling systemd", func(c *Config) { c.Systemd = &fakeSystemd{states: []string{"starting"}} }, 0},
		{"while systemd settles", func(c *Config) { c.Systemd = &fakeSystemd{states: []string{"starting"}} }, 50 * time.Millisecond},
		{"while a command runs", func(c *Config) {
			c.Commands = []CommandCheck{{Name: "hang", Command: []string{"sleep", "30"}}}
		}, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{ProcDir: debianProc(t), SettleTimeout: time.Minute}
			tt.cfg(&cfg)
			c := newTestChecker(t, cfg)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.delay == 0 {
				cancel()
			} else {
				time.AfterFunc(tt.delay, cancel)
			}
			start := time.Now()
			res, err := c.Check(ctx, Expect{KernelRelease: debRelease})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Check error = %v, want context.Canceled", err)
			}
			if res.Healthy {
				t.Error("Healthy after cancellation")
			}
			if el := time.Since(start); el > 5*time.Second {
				t.Errorf("Check took %v after cancellation", el)
			}
		})
	}
}

func TestTailBuffer(t *testing.T) {
	tests := []struct {
		name   string
		max    int
		writes []string
		want   string
	}{
		{"short", 5, []string{"ab", "c"}, "abc"},
		{"exact", 3, []string{"abc"}, "abc"},
		{"overflow across writes", 5, []string{"abc", "def", "gh"}, "defgh"},
		{"one big write", 3, []string{"abcdef"}, "def"},
		{"big then small", 3, []string{"abcdef", "g"}, "efg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &tailBuffer{max: tt.max}
			for _, w := range tt.writes {
				if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			if got := b.String(); got != tt.want {
				t.Errorf("tail %q, want %q", got, tt.want)
			}
		})
	}
}
