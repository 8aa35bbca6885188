package main

// What every coordinator command shares: the global connection and output
// flags with their environment variables, positional argument checks,
// error mapping and table/JSON output.

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/client"
)

const (
	defaultCoordinator = "http://127.0.0.1:8001"
	envCoordinator     = "KROLL_COORDINATOR"
	envToken           = "KROLL_TOKEN"
	envTLSCA           = "KROLL_TLS_CA"
	envTLSCert         = "KROLL_TLS_CERT"
	envTLSKey          = "KROLL_TLS_KEY"
)

// globals are the flags of every command, given before or after its
// name. Values from the environment are applied in connect, not as flag
// defaults, so that --help never prints a token.
type globals struct {
	coordinator, output, token, tlsCA, tlsCert, tlsKey string
}

// register adds the global flags to root.
func (g *globals) register(root *cobra.Command) {
	pf := root.PersistentFlags()
	pf.StringVar(&g.coordinator, "coordinator", "", "coordinator `URL`s, comma-separated, tried in turn (env "+envCoordinator+", default "+defaultCoordinator+")")
	pf.StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	pf.StringVar(&g.token, "token", "", "bearer token (env "+envToken+", preferred: flags show in process listings)")
	pf.StringVar(&g.tlsCA, "tls-ca", "", "PEM CA bundle `FILE` to verify the coordinator with (env "+envTLSCA+", default: system roots)")
	pf.StringVar(&g.tlsCert, "tls-cert", "", "PEM client certificate `FILE` for mutual TLS, with --tls-key (env "+envTLSCert+")")
	pf.StringVar(&g.tlsKey, "tls-key", "", "PEM client key `FILE` for mutual TLS, with --tls-cert (env "+envTLSKey+")")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))
	_ = root.RegisterFlagCompletionFunc("coordinator", cobra.NoFileCompletions)
	_ = root.RegisterFlagCompletionFunc("token", cobra.NoFileCompletions)
}

// check validates the flags every command takes.
func (g *globals) check() error {
	if g.output != "table" && g.output != "json" {
		return cli.Usagef("--output %q: want table or json", g.output)
	}
	return nil
}

// json reports whether the output is JSON.
func (g *globals) json() bool { return g.output == "json" }

// coord is a coordinator command's connection and output format.
type coord struct {
	env    cli.Env
	client *client.Client
	json   bool
	// hint says where the coordinators were configured, for an error
	// naming them (default: --coordinator, KROLL_COORDINATOR).
	hint string
}

// connect returns the command's connection: flags first, then the
// environment, then the default URL.
func (a *app) connect() (*coord, error) {
	return a.g.connect(a.env)
}

func (g *globals) connect(env cli.Env) (*coord, error) {
	if err := g.check(); err != nil {
		return nil, err
	}
	ca := firstNonEmpty(g.tlsCA, env.Getenv(envTLSCA))
	cert := firstNonEmpty(g.tlsCert, env.Getenv(envTLSCert))
	key := firstNonEmpty(g.tlsKey, env.Getenv(envTLSKey))
	if (cert == "") != (key == "") {
		return nil, cli.Usagef("--tls-cert and --tls-key go together (env %s, %s)", envTLSCert, envTLSKey)
	}
	urls, err := coordinatorURLs(firstNonEmpty(g.coordinator, env.Getenv(envCoordinator), defaultCoordinator))
	if err != nil {
		return nil, err
	}
	token := firstNonEmpty(g.token, env.Getenv(envToken))
	tlsCfg, err := client.TLSConfig(ca, cert, key)
	if err != nil {
		return nil, err
	}
	c, err := client.New(urls[0], client.Options{Token: token, TLS: tlsCfg, Fallbacks: urls[1:]})
	if err != nil {
		return nil, &cli.UsageError{Err: err}
	}
	return &coord{env: env, client: c, json: g.json()}, nil
}

// coordinatorURLs splits a comma-separated list of coordinator URLs.
func coordinatorURLs(s string) ([]string, error) {
	var urls []string
	for _, u := range strings.Split(s, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			return nil, cli.Usagef("coordinator URLs %q: an empty entry (want URL[,URL...])", s)
		}
		urls = append(urls, u)
	}
	return urls, nil
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
// coordinators; the coordinator's words never carry terminal escapes.
func (c *coord) fail(err error) error {
	ae, isAPI := errors.AsType[*client.APIError](err)
	if isAPI && len(c.client.BaseURLs()) == 1 {
		return &client.APIError{Status: ae.Status, Kind: printable(ae.Kind), Value: printable(ae.Value)}
	}
	if !isAPI && errors.Is(err, syscall.ECONNREFUSED) {
		what := "coordinator"
		if len(c.client.BaseURLs()) > 1 {
			what = "coordinators"
		}
		hint := cmp.Or(c.hint, "see --coordinator, "+envCoordinator)
		return fmt.Errorf("%s %s: %w (is kroll-coordinator running there? %s)",
			what, strings.Join(c.client.BaseURLs(), ", "), syscall.ECONNREFUSED, hint)
	}
	if s := err.Error(); printable(s) != s {
		return errors.New(printable(s))
	}
	return err
}

// show prints v as indented JSON or, in table mode, with table writing to
// a tabwriter (cells end in tabs).
func (c *coord) show(v any, table func(w io.Writer)) error {
	return show(c.env.Stdout, c.json, v, table)
}

// show prints v to w as indented JSON when asJSON, else the table.
func show(w io.Writer, asJSON bool, v any, table func(w io.Writer)) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
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

// usage returns the usage error of a command with the given synopsis.
func usage(synopsis string) error {
	return cli.Usagef("usage: krollctl %s", synopsis)
}

// use is a command's cobra Use line: its synopsis without the group
// ("dc set NAME ..." → "set NAME ...").
func use(synopsis string) string {
	if _, rest, ok := strings.Cut(synopsis, " "); ok && groupWord(synopsis) {
		return rest
	}
	return synopsis
}

// groupWord reports whether synopsis starts with a command group's name.
func groupWord(synopsis string) bool {
	first, _, _ := strings.Cut(synopsis, " ")
	switch first {
	case "cluster", "dc", "slots", "host", "release", "policy", "rollout", "cve", "train":
		return true
	}
	return false
}

// nArgs wants exactly n positional arguments, the first not empty, else
// the usage error of synopsis.
func nArgs(n int, synopsis string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n || n > 0 && args[0] == "" {
			return usage(synopsis)
		}
		return nil
	}
}

// rangeArgs wants min to max positional arguments, the first not empty.
func rangeArgs(lo, hi int, synopsis string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi || len(args) > 0 && args[0] == "" {
			return usage(synopsis)
		}
		return nil
	}
}
