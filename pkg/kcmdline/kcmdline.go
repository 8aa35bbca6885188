// Package kcmdline reads and edits Linux kernel command lines: it splits
// them the way the kernel does, knows which parameters belong to one boot
// only, validates the parameters a release manifest may add or remove, and
// applies those changes to an inherited command line.
package kcmdline

import (
	"fmt"
	"slices"
	"strings"
)

// Limits on the changes a release may make to the command line.
const (
	// MaxChanges is the most parameters a release may add, and the most
	// it may remove.
	MaxChanges = 32
	// MaxParamLen is the longest parameter (name=value) a release may add.
	MaxParamLen = 256
	// MaxLen is the longest command line Apply produces; x86's
	// COMMAND_LINE_SIZE is 2048 bytes including the terminating NUL.
	MaxLen = 2047
)

// OneShotParams are the parameter names that belong to one boot only and
// are never carried over to the next kernel (names compare with '-' and
// '_' as equal, as the kernel and systemd do):
//
//   - BOOT_IMAGE, initrd: added by the boot loader for the image it
//     loaded; kexec passes the new image and initrd itself.
//   - kroll.oneshot: kroll's own marker for a parameter meant for one boot.
//   - systemd.unit, systemd.run, systemd.run_success_action,
//     systemd.run_failure_action, single, s, S, -s, -b, emergency, rescue,
//     rd.break: one-shot targets, commands, runlevels and debug breaks.
//   - elfcorehdr, kexec_jump_back_entry: added by kexec itself for a crash
//     or jump-back kernel.
func OneShotParams() []string {
	return []string{
		"BOOT_IMAGE", "initrd",
		"kroll.oneshot",
		"systemd.unit", "systemd.run", "systemd.run_success_action", "systemd.run_failure_action",
		"single", "s", "S", "-s", "-b", "emergency", "rescue", "rd.break",
		"elfcorehdr", "kexec_jump_back_entry",
	}
}

// Key is the comparison key of a parameter name: the kernel and systemd
// treat '-' and '_' in names as equal.
func Key(name string) string { return strings.ReplaceAll(name, "-", "_") }

// Split splits a command line into parameters the way the kernel does: at
// white space outside double quotes. Quotes stay part of the parameters.
func Split(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote, inTok := false, false
	for _, c := range s {
		switch {
		case c == '"':
			inQuote = !inQuote
			inTok = true
			cur.WriteRune(c)
		case !inQuote && (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0):
			if inTok {
				out = append(out, cur.String())
				cur.Reset()
				inTok = false
			}
		default:
			inTok = true
			cur.WriteRune(c)
		}
	}
	if inTok {
		out = append(out, cur.String())
	}
	return out
}

// Name returns the name of parameter p (the part before '=', without
// quotes).
func Name(p string) string {
	name, _, _ := strings.Cut(strings.TrimPrefix(p, `"`), "=")
	return strings.TrimSuffix(name, `"`)
}

// isOneShot reports whether name is one of OneShotParams.
func isOneShot(name string) bool {
	k := Key(name)
	for _, o := range OneShotParams() {
		if Key(o) == k {
			return true
		}
	}
	return false
}

// validName reports whether name is a plain parameter name: letters,
// digits, '_', '-' and '.' (module.param), starting with a letter or
// digit.
func validName(name string) bool {
	if name == "" || len(name) > MaxParamLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || !strings.ContainsRune("_-.", rune(c))) {
			return false
		}
	}
	return true
}

// CheckAdd returns what is wrong with a parameter a release adds
// ("name" or "name=value"), or "": printable ASCII without spaces,
// quotes or backslashes, at most MaxParamLen bytes, a plain name, and not
// a one-shot parameter.
func CheckAdd(p string) string {
	if p == "" {
		return "must not be empty"
	}
	if len(p) > MaxParamLen {
		return fmt.Sprintf("must be at most %d bytes", MaxParamLen)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\'' || c == '\\' {
			return fmt.Sprintf("%q: must be printable ASCII without spaces, quotes or backslashes", p)
		}
	}
	name, _, _ := strings.Cut(p, "=")
	if !validName(name) {
		return fmt.Sprintf("%q: the name must consist of letters, digits, '_', '-' and '.' and start with a letter or digit", p)
	}
	if isOneShot(name) {
		return fmt.Sprintf("%q: %s is a one-shot parameter, never carried over to a kernel", p, name)
	}
	return ""
}

// CheckRemove returns what is wrong with a parameter name a release
// removes, or "": a plain name (no '=value') that is not a one-shot
// parameter.
func CheckRemove(name string) string {
	if name == "" {
		return "must not be empty"
	}
	if strings.Contains(name, "=") {
		return fmt.Sprintf("%q: give the parameter's name only (every value is removed)", name)
	}
	if !validName(name) {
		return fmt.Sprintf("%q: must consist of letters, digits, '_', '-' and '.' and start with a letter or digit", name)
	}
	if isOneShot(name) {
		return fmt.Sprintf("%q: a one-shot parameter, never carried over to a kernel anyway", name)
	}
	return ""
}

// Apply returns cmdline changed by a release: every parameter named in
// remove is dropped (whatever its value), then every parameter of add is
// appended unless the same parameter is already there. To replace a value
// (mitigations=off by mitigations=auto) a release removes the name and
// adds the new parameter. Arguments for init (after "--") are kept at the
// end, unchanged. add and remove must have passed CheckAdd and
// CheckRemove; the result must fit MaxLen.
func Apply(cmdline string, add, remove []string) (string, error) {
	for _, p := range add {
		if msg := CheckAdd(p); msg != "" {
			return "", fmt.Errorf("kcmdline: parameter to add %s", msg)
		}
	}
	drop := map[string]bool{}
	for _, n := range remove {
		if msg := CheckRemove(n); msg != "" {
			return "", fmt.Errorf("kcmdline: parameter to remove %s", msg)
		}
		drop[Key(n)] = true
	}
	var kernel, initArgs []string
	toks := Split(cmdline)
	for i, tok := range toks {
		if tok == "--" {
			initArgs = toks[i:]
			break
		}
		if drop[Key(Name(tok))] {
			continue
		}
		kernel = append(kernel, tok)
	}
	for _, p := range add {
		if !slices.Contains(kernel, p) {
			kernel = append(kernel, p)
		}
	}
	out := strings.Join(append(kernel, initArgs...), " ")
	if len(out) > MaxLen {
		return "", fmt.Errorf("kcmdline: the command line would be %d bytes, more than the kernel's %d", len(out), MaxLen)
	}
	return out, nil
}

// LSMs returns the value of the last lsm= parameter of cmdline split at
// commas (the kernel uses the last one), and whether there is one.
func LSMs(cmdline string) ([]string, bool) {
	var list []string
	found := false
	for _, tok := range Split(cmdline) {
		if tok == "--" {
			break
		}
		name, value, ok := strings.Cut(strings.Trim(tok, `"`), "=")
		if !ok || Key(name) != "lsm" {
			continue
		}
		found = true
		list = nil
		for _, l := range strings.Split(value, ",") {
			if l = strings.TrimSpace(l); l != "" {
				list = append(list, l)
			}
		}
	}
	return list, found
}

// TouchesLSM reports whether a release's changes concern the lsm=
// parameter (it removes lsm or adds an lsm= list).
func TouchesLSM(add, remove []string) bool {
	for _, n := range remove {
		if Key(n) == "lsm" {
			return true
		}
	}
	for _, p := range add {
		if n, _, _ := strings.Cut(p, "="); Key(n) == "lsm" {
			return true
		}
	}
	return false
}

// KeepsBPF checks that a release's changes keep the bpf LSM when it is in
// force now (bpfActive): the result of Apply(cmdline, add, remove) must
// still name bpf in its lsm= list, or, when cmdline had no lsm= at all
// (the kernel's built-in CONFIG_LSM order is in force), have none either.
// It returns an error saying why the release must be refused, or nil.
func KeepsBPF(cmdline string, add, remove []string, bpfActive bool) error {
	if !bpfActive || !TouchesLSM(add, remove) {
		return nil
	}
	next, err := Apply(cmdline, add, remove)
	if err != nil {
		return err
	}
	list, set := LSMs(next)
	if !set {
		if _, before := LSMs(cmdline); before {
			return fmt.Errorf("the release removes lsm=, but the bpf LSM is in force now and kroll's mitigations depend on it: the next kernel would start the built-in LSM order, which may not include bpf")
		}
		return nil
	}
	if !slices.Contains(list, "bpf") {
		return fmt.Errorf("the release sets lsm=%s without bpf, but the bpf LSM is in force now and kroll's mitigations depend on it", strings.Join(list, ","))
	}
	return nil
}
