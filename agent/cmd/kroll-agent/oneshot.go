package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kroll-dev/kroll/agent/journal"
	"github.com/kroll-dev/kroll/agent/stage"
	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/fsutil"
	"github.com/kroll-dev/kroll/pkg/wire"
)

const (
	stageUsage  = "stage [--config FILE] [--signature FILE] MANIFEST"
	statusUsage = "status [--config FILE] [--json]"
	resetUsage  = "reset [--config FILE]"
	// resetFileName in the state dir asks a failed daemon to return to
	// service.
	resetFileName = "reset-requested"
)

func stageCommand() cli.Command {
	return cli.Command{Usage: stageUsage, Summary: "fetch, verify and unpack a signed release (one-shot; MANIFEST.sig beside it)", Run: stageOnce}
}

func statusCommand() cli.Command {
	return cli.Command{Usage: statusUsage, Summary: "the local lifecycle phase and journal", Run: status}
}

func resetCommand() cli.Command {
	return cli.Command{Usage: resetUsage, Summary: "return a failed host to service (restores its routes; the daemon acts on it)", Run: reset}
}

func stageOnce(ctx context.Context, env cli.Env, args []string) error {
	fs := cli.NewFlagSet(env, env.Name+" stage", stageUsage)
	path := fs.String("config", DefaultConfigPath, "agent configuration `FILE` (TOML)")
	sigPath := fs.String("signature", "", "detached signature `FILE` (default MANIFEST.sig)")
	pos, err := cli.ParseInterspersed(fs, env.Stdout, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return cli.Usagef("stage: want exactly one MANIFEST (usage: %s %s)", env.Name, stageUsage)
	}
	c, err := loadConfig(*path)
	if err != nil {
		return err
	}
	if *sigPath == "" {
		*sigPath = pos[0] + ".sig"
	}
	manifest, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	sig, err := os.ReadFile(*sigPath)
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
	fmt.Fprintf(env.Stdout, "staged %s: kernel %s\n  vmlinuz %s\n", s.Release.ID, s.KernelRelease, s.Vmlinuz)
	if s.Initrd != "" {
		fmt.Fprintf(env.Stdout, "  initrd  %s\n", s.Initrd)
	}
	fmt.Fprintf(env.Stdout, "  in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

func status(ctx context.Context, env cli.Env, args []string) error {
	fs := cli.NewFlagSet(env, env.Name+" status", statusUsage)
	path := fs.String("config", DefaultConfigPath, "agent configuration `FILE` (TOML)")
	asJSON := fs.Bool("json", false, "print the journal as JSON")
	pos, err := cli.ParseInterspersed(fs, env.Stdout, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return cli.Usagef("status: unexpected argument %q", pos[0])
	}
	c, err := loadConfig(*path)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(filepath.Join(c.stateDir, journal.FileName))
	if os.IsNotExist(err) {
		if *asJSON {
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
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(j)
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

func reset(ctx context.Context, env cli.Env, args []string) error {
	c, pos, err := configFlag(env, "reset", resetUsage, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return cli.Usagef("reset: unexpected argument %q", pos[0])
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
	fmt.Fprintln(env.Stdout, "reset requested: the daemon restores the anycast routes and returns to idle")
	return nil
}
