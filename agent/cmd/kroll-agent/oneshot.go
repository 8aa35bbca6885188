package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kroll-dev/kroll/agent/journal"
	"github.com/kroll-dev/kroll/agent/stage"
	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/fsutil"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// resetFileName in the state dir asks a failed daemon to return to
// service.
const resetFileName = "reset-requested"

// stageResult is what stage prints with -o json.
type stageResult struct {
	Release string  `json:"release"`
	Kernel  string  `json:"kernel"`
	Vmlinuz string  `json:"vmlinuz"`
	Initrd  string  `json:"initrd,omitempty"`
	Seconds float64 `json:"seconds"`
}

func (a *app) stageCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "stage [--signature FILE] MANIFEST", Short: "fetch, verify and unpack a signed release (one-shot; MANIFEST.sig beside it)"}
	var sigPath string
	cmd.Flags().StringVar(&sigPath, "signature", "", "detached signature `FILE` (default MANIFEST.sig)")
	cmd.Args = func(_ *cobra.Command, args []string) error {
		if len(args) != 1 {
			return cli.Usagef("stage: want exactly one MANIFEST (usage: %s)", cmd.UseLine())
		}
		return nil
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error { return a.stage(cmd.Context(), args[0], sigPath) }
	return cmd
}

func (a *app) stage(ctx context.Context, manifestPath, sigPath string) error {
	c, err := loadConfig(a.config, a.kernel)
	if err != nil {
		return err
	}
	if sigPath == "" {
		sigPath = manifestPath + ".sig"
	}
	manifest, err := os.ReadFile(manifestPath)
	if err != nil {
		return err
	}
	sig, err := os.ReadFile(sigPath)
	if err != nil {
		return err
	}
	st, err := stage.New(stage.Config{Dir: c.stageDir, Trusted: c.releaseKeys, MaxRetries: c.maxRetries, Backoff: c.backoff,
		MinFreeBytes: c.minFree, Modules: c.modules, MaxEntrySize: c.maxEntry, MaxTotalSize: c.maxTotal})
	if err != nil {
		return err
	}
	start := time.Now()
	s, err := st.Stage(ctx, manifest, sig)
	if err != nil {
		return err
	}
	took := time.Since(start)
	if a.json() {
		return printJSON(a.env.Stdout, stageResult{Release: s.Release.ID, Kernel: s.KernelRelease, Vmlinuz: s.Vmlinuz, Initrd: s.Initrd, Seconds: took.Seconds()})
	}
	fmt.Fprintf(a.env.Stdout, "staged %s: kernel %s\n  vmlinuz %s\n", s.Release.ID, s.KernelRelease, s.Vmlinuz)
	if s.Initrd != "" {
		fmt.Fprintf(a.env.Stdout, "  initrd  %s\n", s.Initrd)
	}
	fmt.Fprintf(a.env.Stdout, "  in %s\n", took.Round(time.Millisecond))
	return nil
}

func (a *app) statusCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "status", Short: "the local lifecycle phase and journal", Args: noArgs("status")}
	var asJSON bool
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the journal as JSON (same as -o json)")
	_ = cmd.Flags().MarkHidden("json")
	cmd.RunE = func(*cobra.Command, []string) error { return a.status(asJSON || a.json()) }
	return cmd
}

func (a *app) resetCommand() *cobra.Command {
	return &cobra.Command{Use: "reset", Short: "return a failed host to service (restores its routes; the daemon acts on it)", Args: noArgs("reset"),
		RunE: func(*cobra.Command, []string) error { return a.reset() }}
}

func (a *app) status(asJSON bool) error {
	env := a.env
	c, err := loadConfig(a.config, a.kernel)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(filepath.Join(c.stateDir, journal.FileName))
	if os.IsNotExist(err) {
		if asJSON {
			return json.NewEncoder(env.Stdout).Encode(journal.New(time.Time{}))
		}
		fmt.Fprintln(env.Stdout, "phase: idle (no journal yet)")
		return nil
	}
	if err != nil {
		return err
	}
	j, err := journal.Decode(data)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(env.Stdout, j)
	}
	w := env.Stdout
	fmt.Fprintf(w, "phase:     %s (since %s, %s)\n", j.Phase, j.PhaseSince.UTC().Format(time.RFC3339), time.Since(j.PhaseSince).Round(time.Second))
	if j.Target != nil {
		fmt.Fprintf(w, "release:   %s (kernel %s)\n", j.Target.ID, j.Target.KernelRelease)
	}
	if j.Staged != nil {
		fmt.Fprintf(w, "staged:    %s\n", j.Staged.Vmlinuz)
	}
	if j.Slot != nil {
		fmt.Fprintf(w, "slot:      %s token %d (lease until %s)\n", j.Slot.Datacenter, j.Slot.Token, j.Slot.LeaseExpires.UTC().Format(time.RFC3339))
	}
	if j.Withdrawn || len(j.Routes) > 0 {
		rs := make([]string, len(j.Routes))
		for i, r := range j.Routes {
			rs[i] = r.Dst.String()
		}
		fmt.Fprintf(w, "withdrawn: %v routes: %s\n", j.Withdrawn, strings.Join(rs, " "))
	}
	if j.Previous != nil {
		fmt.Fprintf(w, "previous:  %s (boot %s)\n", j.Previous.Release, j.Previous.BootID)
	}
	for i, b := range j.Boots {
		fmt.Fprintf(w, "boot %d:    %s into %s at %s (rollback %v, completed %v)\n", i+1, b.Method, b.Into, b.Started.UTC().Format(time.RFC3339), b.Rollback, b.Completed)
	}
	if j.Health != "" {
		fmt.Fprintf(w, "health:    %s\n", j.Health)
	}
	if j.Error != "" {
		fmt.Fprintf(w, "error:     %s\n", j.Error)
	}
	for id, outcome := range j.Done {
		fmt.Fprintf(w, "done:      %s: %s\n", id, outcome)
	}
	return nil
}

func (a *app) reset() error {
	c, err := loadConfig(a.config, a.kernel)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(filepath.Join(c.stateDir, journal.FileName))
	if err != nil {
		return err
	}
	j, err := journal.Decode(data)
	if err != nil {
		return err
	}
	if j.Phase != wire.PhaseFailed {
		return fmt.Errorf("reset: the agent is in phase %s, not failed; nothing to reset", j.Phase)
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(c.stateDir, resetFileName), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600, false); err != nil {
		return err
	}
	if a.json() {
		return printJSON(a.env.Stdout, map[string]bool{"reset_requested": true})
	}
	fmt.Fprintln(a.env.Stdout, "reset requested: the daemon restores the anycast routes and returns to idle")
	return nil
}
