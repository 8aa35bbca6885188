package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"

	"github.com/kroll-dev/kroll/pkg/buildinfo"
)

// runError marks an error returned by a command's own RunE: everything
// else Execute sees failing is the command line (unknown command or flag,
// wrong arguments) and a usage error.
type runError struct{ err error }

func (e runError) Error() string { return e.err.Error() }
func (e runError) Unwrap() error { return e.err }

// Execute runs root with args under kroll's conventions: output to env,
// errors returned (never printed by cobra) and command-line mistakes as
// *UsageError (exit 2), cobra's own multi-line messages folded into one
// line naming the help to read. It adds `version` and the hidden
// `gen-man DIR` (the manual pages of the command tree), and accepts the
// Go flag package's single-dash long flags (-output json) that scripts of
// earlier versions pass.
func Execute(ctx context.Context, env Env, root *cobra.Command, args []string) error {
	root.SilenceErrors, root.SilenceUsage = true, true
	root.DisableAutoGenTag = true
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &UsageError{Err: fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())}
	})
	root.Version = buildinfo.String(env.Name)
	root.SetVersionTemplate("{{.Version}}\n")
	root.AddCommand(versionCommand(env), manCommand(root))
	markRunErrors(root)
	root.SetArgs(singleDashLongFlags(root, args))
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return nil
	}
	if re, ok := errors.AsType[runError](err); ok {
		return re.err
	}
	if _, ok := errors.AsType[*UsageError](err); ok {
		return err
	}
	path := root.Name()
	if cmd != nil {
		path = cmd.CommandPath()
	}
	return Usagef("%s (see '%s --help')", oneLine(err.Error()), path)
}

// markRunErrors wraps the RunE of every command of the tree so that
// Execute tells its errors from those of the command line.
func markRunErrors(c *cobra.Command) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if err := run(cmd, args); err != nil {
				return runError{err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		markRunErrors(sub)
	}
}

// oneLine joins the non-empty lines of s with single spaces.
func oneLine(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, " ")
}

var singleDashFlag = regexp.MustCompile(`^-([a-z][a-z0-9-]+)(=.*)?$`)

// singleDashLongFlags rewrites "-name" and "-name=value" to "--name…"
// when name is a long flag of some command of root: the Go flag package
// accepted both, pflag takes "-name" for a group of short flags. Nothing
// after "--" changes.
func singleDashLongFlags(root *cobra.Command, args []string) []string {
	names := map[string]bool{}
	var collect func(c *cobra.Command)
	collect = func(c *cobra.Command) {
		for _, fs := range []*pflag.FlagSet{c.Flags(), c.PersistentFlags()} {
			fs.VisitAll(func(f *pflag.Flag) { names[f.Name] = true })
		}
		for _, sub := range c.Commands() {
			collect(sub)
		}
	}
	collect(root)
	out := make([]string, len(args))
	for i, a := range args {
		if a == "--" {
			copy(out[i:], args[i:])
			break
		}
		if m := singleDashFlag.FindStringSubmatch(a); m != nil && names[m[1]] {
			a = "-" + a
		}
		out[i] = a
	}
	return out
}

// Group returns a command that only holds subcommands: without one it
// prints its help and fails as bad usage, "help" prints the help, an
// unknown name is bad usage naming the ones there are.
func Group(use, short string, subs ...*cobra.Command) *cobra.Command {
	g := &cobra.Command{Use: use, Short: short, Args: cobra.ArbitraryArgs}
	g.AddCommand(subs...)
	g.RunE = func(cmd *cobra.Command, args []string) error {
		var names []string
		for _, s := range cmd.Commands() {
			if s.IsAvailableCommand() {
				names = append(names, s.Name())
			}
		}
		want := strings.Join(names, ", ")
		switch {
		case len(args) == 0:
			_ = cmd.Help()
			return Usagef("%s: no command given (want %s)", cmd.Name(), want)
		case args[0] == "help":
			return cmd.Help()
		}
		return Usagef("%s: unknown command %q (want %s)", cmd.Name(), args[0], want)
	}
	return g
}

// versionCommand prints the binary's version and commit.
func versionCommand(env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print version and commit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f := cmd.Flags().Lookup("output"); f != nil && f.Value.String() == "json" {
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "{\"name\": %q, \"version\": %q, \"commit\": %q}\n", env.Name, buildinfo.Version(), buildinfo.Commit())
				return err
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), buildinfo.String(env.Name))
			return err
		},
	}
}

// manCommand writes the manual pages of the command tree of root: one
// per command, ROOT[-SUB...].SECTION (section from the root's
// Annotations["man-section"], else 1), dated SOURCE_DATE_EPOCH when set.
// `make man` and packaging/stage.sh run it.
func manCommand(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:    "gen-man DIR",
		Short:  "write the manual pages of every command into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			section := root.Annotations["man-section"]
			if section == "" {
				section = "1"
			}
			hdr := &doc.GenManHeader{Section: section, Source: "kroll " + buildinfo.Version(), Manual: "kroll manual"}
			if err := doc.GenManTree(root, hdr, args[0]); err != nil {
				return fmt.Errorf("gen-man: %w", err)
			}
			pages, _ := filepath.Glob(filepath.Join(args[0], "*."+section))
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %d manual pages to %s\n", len(pages), args[0])
			return nil
		},
	}
}
