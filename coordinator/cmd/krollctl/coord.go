package main

// What every coordinator command shares: the connection and output
// flags, argument parsing with flags after positional arguments,
// subcommand groups, error mapping and table/JSON output.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/client"
)

const (
	defaultCoordinator = "http://127.0.0.1:8001"
	envCoordinator     = "KROLL_COORDINATOR"
	envToken           = "KROLL_TOKEN"
)

// coordFlags are the flags every coordinator command takes.
type coordFlags struct {
	url, output, token, tlsCA, tlsCert, tlsKey string
}

// addCoordFlags registers the connection and output flags on fs. Values
// from the environment are applied in connect, not as flag defaults, so
// that --help never prints a token.
func addCoordFlags(fs *flag.FlagSet) *coordFlags {
	f := &coordFlags{}
	fs.StringVar(&f.url, "coordinator", "", "coordinator URL (env "+envCoordinator+", default "+defaultCoordinator+")")
	fs.StringVar(&f.output, "output", "table", "output format: table or json")
	fs.StringVar(&f.token, "token", "", "bearer token (env "+envToken+", preferred: flags show in process listings)")
	fs.StringVar(&f.tlsCA, "tls-ca", "", "PEM CA bundle to verify the coordinator with (default: system roots)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM client certificate for mutual TLS (with --tls-key)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM client key for mutual TLS (with --tls-cert)")
	return f
}

// varArgs as prepare's nargs leaves counting the positional arguments to
// the command's check.
const varArgs = -1

// prepare does what every coordinator command starts with: it registers
// the connection and output flags and, when flags is not nil, the
// command's own; parses args, flags after positional arguments allowed;
// wants exactly nargs positional arguments, the first not empty (else the
// usage error of usageText); runs check, when not nil, on the parsed
// flags and positional arguments; and connects. check runs before
// connecting so that a command's own usage errors come before those of
// the connection flags.
func prepare(env cli.Env, usageText string, args []string, nargs int,
	flags func(fs *flag.FlagSet), check func(fs *flag.FlagSet, pos []string) error) (*coord, []string, error) {
	fs := cli.NewFlagSet(env, "krollctl", usageText)
	cf := addCoordFlags(fs)
	if flags != nil {
		flags(fs)
	}
	pos, err := cli.ParseInterspersed(fs, env.Stdout, args)
	if err != nil {
		return nil, nil, err
	}
	if nargs != varArgs && (len(pos) != nargs || nargs > 0 && pos[0] == "") {
		return nil, nil, usage(usageText)
	}
	if check != nil {
		if err := check(fs, pos); err != nil {
			return nil, nil, err
		}
	}
	c, err := cf.connect(env)
	if err != nil {
		return nil, nil, err
	}
	return c, pos, nil
}

// coord is a coordinator command's connection and output format.
type coord struct {
	env    cli.Env
	client *client.Client
	json   bool
}

// connect checks the flags and returns the command's connection.
func (f *coordFlags) connect(env cli.Env) (*coord, error) {
	if f.output != "table" && f.output != "json" {
		return nil, cli.Usagef("--output %q: want table or json", f.output)
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return nil, cli.Usagef("--tls-cert and --tls-key go together")
	}
	url := firstNonEmpty(f.url, env.Getenv(envCoordinator), defaultCoordinator)
	token := firstNonEmpty(f.token, env.Getenv(envToken))
	tlsCfg, err := client.TLSConfig(f.tlsCA, f.tlsCert, f.tlsKey)
	if err != nil {
		return nil, err
	}
	c, err := client.New(url, client.Options{Token: token, TLS: tlsCfg})
	if err != nil {
		return nil, &cli.UsageError{Err: err}
	}
	return &coord{env: env, client: c, json: f.output == "json"}, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// fail maps a client error to the one line krollctl prints: an API error
// as "KIND: VALUE (HTTP STATUS)", a refused connection naming the
// coordinator.
func (c *coord) fail(err error) error {
	if ae, ok := errors.AsType[*client.APIError](err); ok {
		// The coordinator's words go to a terminal: no escapes.
		return &client.APIError{Status: ae.Status, Kind: printable(ae.Kind), Value: printable(ae.Value)}
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("coordinator %s: %w (is kroll-coordinator running there? see --coordinator, %s)",
			c.client.BaseURL(), syscall.ECONNREFUSED, envCoordinator)
	}
	return err
}

// show prints v as indented JSON or, in table mode, with table writing to
// a tabwriter (cells end in tabs).
func (c *coord) show(v any, table func(w io.Writer)) error {
	if c.json {
		enc := json.NewEncoder(c.env.Stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(c.env.Stdout, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// row writes one table row of sanitized cells.
func row(w io.Writer, cells ...string) {
	for i, s := range cells {
		cells[i] = cell(s)
	}
	fmt.Fprintln(w, strings.Join(cells, "\t"))
}

// cell makes a value from the coordinator safe and visible in a table:
// see printable; empty becomes "-".
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return printable(s)
}

// printable replaces whitespace controls (tab, newline) with a space and
// other control characters, terminal escapes among them, with '?'.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return ' '
		case unicode.IsControl(r):
			return '?'
		}
		return r
	}, s)
}

// ts formats a time as RFC 3339 in UTC, "-" when zero.
func ts(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// group is a command with subcommands, e.g. "dc list".
func group(name, summary string, subs map[string]cli.Command) cli.Command {
	names := make([]string, 0, len(subs))
	for n := range subs {
		names = append(names, n)
	}
	slices.Sort(names)
	want := strings.Join(names, ", ")
	help := func(env cli.Env) {
		fmt.Fprintf(env.Stdout, "Usage: krollctl %s COMMAND [ARGS] [FLAGS]\n\n%s\n\nCommands:\n", name, summary)
		for _, n := range names {
			fmt.Fprintf(env.Stdout, "  krollctl %s\n      %s\n", subs[n].Usage, subs[n].Summary)
		}
		fmt.Fprintf(env.Stdout, "\nRun 'krollctl %s COMMAND --help' for a command's flags.\n", name)
	}
	return cli.Command{
		Usage:   name + " " + strings.Join(names, "|"),
		Summary: summary,
		Run: func(ctx context.Context, env cli.Env, args []string) error {
			if len(args) == 0 {
				help(env)
				return cli.Usagef("%s: no command given (want %s)", name, want)
			}
			switch args[0] {
			case "-h", "-help", "--help", "help":
				help(env)
				return nil
			}
			sub, ok := subs[args[0]]
			if !ok {
				return cli.Usagef("%s: unknown command %q (want %s)", name, args[0], want)
			}
			return sub.Run(ctx, env, args[1:])
		},
	}
}

// usage returns the usage error of a command with the given synopsis.
func usage(synopsis string) error {
	return cli.Usagef("usage: krollctl %s", synopsis)
}
