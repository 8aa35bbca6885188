package install

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSpaceSeparateFileSystems mounts a small tmpfs as /boot of a
// temporary root, so /boot and /lib/modules are different file systems
// with real statfs numbers, and checks each margin is applied to its own
// file system and named in the refusal.
func TestSpaceSeparateFileSystems(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name          string
		boot, modules uint64 // margins
		want          string
	}{
		{"fits", 1 << 20, 1 << 20, ""},
		{"boot too small", 16 << 20, 1 << 20, "not enough free space on the file system of ROOT/boot: 8.0 MiB available, need"},
		{"modules margin", 1 << 20, 1 << 50, "not enough free space on the file system of ROOT/lib/modules"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := newRoot(t)
			boot := filepath.Join(root, "boot")
			if err := unix.Mount("tmpfs", boot, "tmpfs", 0, "size=8m"); err != nil {
				t.Fatalf("mount a tmpfs on %s (tests run as root): %v", boot, err)
			}
			t.Cleanup(func() { _ = unix.Unmount(boot, unix.MNT_DETACH) })
			in, r := newInstaller(t, root, func(c *Config) { c.MinFreeBoot, c.MinFreeModules = tc.boot, tc.modules })
			_, err := in.Install(ctx, stageBundle(t, "module v1", true))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			want := strings.ReplaceAll(tc.want, "ROOT", root)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("install: %v, want %q", err, want)
			}
			if len(r.calls) != 0 {
				t.Fatalf("commands ran after the refusal: %v", r.calls)
			}
		})
	}
}

// TestBundleDepmodFailureRetried: a failing depmod (or an agent killed
// after the module tree was renamed into place) fails the install; the
// retry finds the tree complete and finishes.
func TestBundleDepmodFailureRetried(t *testing.T) {
	need(t, "depmod")
	ctx := context.Background()
	root := newRoot(t)
	in, r := newInstaller(t, root, func(c *Config) { c.Initramfs = InitramfsUpdateInitramfs })
	r.fail["depmod"] = errors.New("exit status 1")
	req := stageBundle(t, "module v1", false)
	_, err := in.Install(ctx, req)
	if err == nil || !strings.Contains(err.Error(), "depmod -b "+root+" "+brel+": exit status 1: depmod failed on purpose") {
		t.Fatalf("install: %v", err)
	}
	delete(r.fail, "depmod")
	if _, err := in.Install(ctx, req); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if got := readFile(t, filepath.Join(root, "lib/modules", brel, "kernel/fs/b.ko")); got != "module v1" {
		t.Fatalf("b.ko = %q", got)
	}
	if got := r.ran("update-initramfs"); len(got) != 1 {
		t.Fatalf("update-initramfs ran %q, want once", got)
	}
}

// TestInitramfsAuto: "auto" picks update-initramfs when installed, else
// dracut, else refuses with a clear error.
func TestInitramfsAuto(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		installed []string
		want      string // the tool run, or the error
	}{
		{"both", []string{"update-initramfs", "dracut"}, "update-initramfs"},
		{"dracut only", []string{"dracut"}, "dracut"},
		{"none", nil, "neither update-initramfs nor dracut is installed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, r := newInstaller(t, newRoot(t), func(c *Config) {
				c.LookPath = func(name string) (string, error) {
					if slices.Contains(tc.installed, name) {
						return "/usr/sbin/" + name, nil
					}
					return "", errors.New("not found")
				}
			})
			err := in.generateInitrd(ctx, brel)
			if len(tc.installed) == 0 {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("generateInitrd: %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(r.calls) != 1 || r.calls[0].name != tc.want {
				t.Fatalf("ran %v, want %s", r.calls, tc.want)
			}
		})
	}
}

// TestExecRunner: output and exit status are kept, a cancelled context
// ends the command and says so.
func TestExecRunner(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Cancelled while running (once it said so): SIGTERM ends it.
	started := filepath.Join(t.TempDir(), "started")
	running, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		defer stop()
		for range 6000 { // bounded: at most a minute
			if _, err := os.Stat(started); err == nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	for _, tc := range []struct {
		name    string
		ctx     context.Context
		args    []string
		wantOut string
		wantErr string
	}{
		{"ok", context.Background(), []string{"-c", "echo out; echo err >&2; echo $KROLL_TEST"}, "out\nerr\nyes\n", ""},
		{"exit status", context.Background(), []string{"-c", "echo bad; exit 3"}, "bad\n", "exit status 3"},
		{"cancelled", ctx, []string{"-c", "sleep 60"}, "", "context canceled"},
		{"cancelled while running", running, []string{"-c", "echo started; touch " + started + "; exec sleep 60"}, "started\n", "context canceled (signal: terminated)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := ExecRunner{}.Run(tc.ctx, []string{"KROLL_TEST=yes"}, "sh", tc.args...)
			if string(out) != tc.wantOut || (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Run = %q, %v; want %q, %q", out, err, tc.wantOut, tc.wantErr)
			}
		})
	}
}
