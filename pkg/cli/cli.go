// Package cli holds what kroll's three binaries share on the command line:
// flag parsing, usage errors, the exit convention and logging.
//
// Exit codes: 0 success, 1 failure, 2 bad usage. Every failure is printed
// as one line "<binary>: <error>" on stderr.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/term"
)

// Env is what a command sees of its process.
type Env struct {
	// Name of the binary, e.g. "krollctl".
	Name   string
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads the environment (os.Getenv in production).
	Getenv func(string) string
}

// UsageError marks an error caused by bad command-line input (exit 2).
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError with a formatted message.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// NewFlagSet returns a flag set that reports errors instead of exiting or
// printing; Parse prints its help for -h/--help. The flag set's name holds
// the whole synopsis ("name usage") for that help.
func NewFlagSet(env Env, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name+" "+usage, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// Parse parses args into fs. For -h/--help it prints the help to stdout
// and returns flag.ErrHelp; anything else that is wrong is a UsageError.
func Parse(fs *flag.FlagSet, stdout io.Writer, args []string) error {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "Usage: %s\n", fs.Name())
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
		return err
	}
	if err != nil {
		return &UsageError{Err: err}
	}
	return nil
}

// ParseInterspersed is Parse that also accepts flags after positional
// arguments ("dc set fra1 --slots 2") and returns the positional ones.
// Everything after "--" is positional.
func ParseInterspersed(fs *flag.FlagSet, stdout io.Writer, args []string) ([]string, error) {
	var pos []string
	for {
		if err := Parse(fs, stdout, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if strings.HasPrefix(rest[0], "-") && rest[0] != "-" {
			// The parser stopped at a flag-like argument: only "--" does
			// that, and it consumed it.
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// Main runs a binary's entry point with signal handling and the exit
// convention, and never returns.
func Main(name string, run func(ctx context.Context, env Env, args []string) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	env := Env{Name: name, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	err := run(ctx, env, os.Args[1:])
	stop()
	os.Exit(ExitCode(env, err))
}

// ExitCode prints err as one line and maps it to the exit code.
func ExitCode(env Env, err error) int {
	if err == nil {
		return 0
	}
	fmt.Fprintf(env.Stderr, "%s: %s\n", env.Name, strings.ReplaceAll(err.Error(), "\n", "; "))
	var ue *UsageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// Logger returns the process logger: text on a terminal, JSON otherwise.
func Logger(w io.Writer, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
