package bootloader

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
)

// MaxGRUBConfigSize bounds the grub.cfg read.
const MaxGRUBConfigSize = 4 << 20

// GRUBEntry is a menu entry of grub.cfg.
type GRUBEntry struct {
	// Path selects the entry for grub-reboot and grub-set-default: the
	// ids (or titles, for items without one) of its submenus and of the
	// entry, joined by '>'.
	Path string
	// ID is the entry's --id ($menuentry_id_option), "" when none.
	ID string
	// Title is the entry's title.
	Title string
	// Image is the kernel image the entry loads (its linux command), ""
	// when none.
	Image string
	// Release is the kernel release of Image (vmlinuz-<release>).
	Release string
	// Recovery is set for recovery (single user) entries.
	Recovery bool
}

// grubItem is a menu item: an entry or a submenu.
type grubItem struct {
	id, title string
	entry     *GRUBEntry  // nil for a submenu
	children  []*grubItem // a submenu's items
}

// GRUBConfig is what the agent needs of a generated grub.cfg.
type GRUBConfig struct {
	// Entries are the menu entries, in menu order (submenus flattened).
	Entries []GRUBEntry
	// SavedDefault is set when the configuration starts the saved entry
	// (set default="${saved_entry}", GRUB_DEFAULT=saved).
	SavedDefault bool
	// OneShot is set when the configuration honours next_entry
	// (grub-reboot).
	OneShot bool
	// Default is the value of `set default=` when it is not
	// "${saved_entry}" (e.g. "0" for GRUB_DEFAULT=0).
	Default string

	top []*grubItem
}

// ParseGRUBConfig reads a grub.cfg as grub-mkconfig writes it: menuentry
// and submenu blocks with their titles and ids, the linux command of each
// entry, and how the default entry is chosen.
func ParseGRUBConfig(r io.Reader) (*GRUBConfig, error) {
	type frame struct {
		item *grubItem // nil for a block that is no menu item (function, if)
	}
	cfg := &GRUBConfig{}
	var stack []frame
	var menuPath []*grubItem // the menu items enclosing the current line
	sc := bufio.NewScanner(io.LimitReader(r, MaxGRUBConfigSize+1))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n, size := 0, 0
	for sc.Scan() {
		n++
		size += len(sc.Bytes()) + 1
		if size > MaxGRUBConfigSize {
			return nil, fmt.Errorf("bootloader: grub.cfg is larger than %d bytes", MaxGRUBConfigSize)
		}
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		words, err := shellWords(line)
		if err != nil {
			return nil, fmt.Errorf("bootloader: grub.cfg line %d: %w", n, err)
		}
		if len(words) == 0 {
			continue
		}
		switch {
		case words[0] == "}" && len(words) == 1:
			if len(stack) == 0 {
				return nil, fmt.Errorf("bootloader: grub.cfg line %d: '}' without a block", n)
			}
			if stack[len(stack)-1].item != nil {
				menuPath = menuPath[:len(menuPath)-1]
			}
			stack = stack[:len(stack)-1]
			continue
		case words[0] == "menuentry" || words[0] == "submenu":
			if words[len(words)-1] != "{" || len(words) < 3 {
				return nil, fmt.Errorf("bootloader: grub.cfg line %d: %s without a title and '{'", n, words[0])
			}
			it := &grubItem{title: words[1]}
			for i := 2; i < len(words)-1; i++ {
				w := words[i]
				if (w == "$menuentry_id_option" || w == "${menuentry_id_option}" || w == "--id") && i+1 < len(words)-1 {
					it.id = words[i+1]
					i++
				} else if v, ok := strings.CutPrefix(w, "--id="); ok {
					it.id = v
				}
			}
			if words[0] == "menuentry" {
				it.entry = &GRUBEntry{ID: it.id, Title: it.title}
			}
			if len(menuPath) > 0 {
				parent := menuPath[len(menuPath)-1]
				if parent.entry != nil {
					return nil, fmt.Errorf("bootloader: grub.cfg line %d: %s inside a menuentry", n, words[0])
				}
				parent.children = append(parent.children, it)
			} else {
				cfg.top = append(cfg.top, it)
			}
			menuPath = append(menuPath, it)
			stack = append(stack, frame{item: it})
			continue
		case words[len(words)-1] == "{":
			stack = append(stack, frame{})
			continue
		}
		if len(menuPath) > 0 {
			if e := menuPath[len(menuPath)-1].entry; e != nil {
				switch words[0] {
				case "linux", "linux16", "linuxefi":
					if len(words) > 1 && e.Image == "" {
						e.Image = words[1]
						e.Release = releaseOf(words[1])
						for _, a := range words[2:] {
							if a == "single" || a == "recovery" || a == "systemd.unit=rescue.target" || a == "systemd.unit=emergency.target" {
								e.Recovery = true
							}
						}
					}
				}
			}
			continue
		}
		// Top-level statements outside functions: how the default is
		// chosen.
		if words[0] == "set" && len(words) == 2 {
			switch k, v, _ := strings.Cut(words[1], "="); {
			case k == "default" && (v == "${saved_entry}" || v == "$saved_entry"):
				cfg.SavedDefault = true
			case k == "default" && (v == "${next_entry}" || v == "$next_entry"):
				cfg.OneShot = true
			case k == "default":
				cfg.Default = v
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("bootloader: grub.cfg: %w", err)
	}
	if len(stack) != 0 {
		return nil, fmt.Errorf("bootloader: grub.cfg: %d blocks not closed", len(stack))
	}
	var walk func(prefix string, items []*grubItem)
	walk = func(prefix string, items []*grubItem) {
		for _, it := range items {
			p := prefix + it.key()
			if it.entry != nil {
				it.entry.Path = p
				if strings.Contains(it.id, "-recovery-") || strings.Contains(it.title, "(recovery mode)") {
					it.entry.Recovery = true
				}
				cfg.Entries = append(cfg.Entries, *it.entry)
				continue
			}
			walk(p+">", it.children)
		}
	}
	walk("", cfg.top)
	return cfg, nil
}

// key is how an item is named in an entry path: its id, else its title.
func (it *grubItem) key() string {
	if it.id != "" {
		return it.id
	}
	return it.title
}

// releaseOf returns the kernel release of a kernel image path
// (/vmlinuz-6.1.0-26-amd64, /boot/vmlinuz-…), or "".
func releaseOf(image string) string {
	base := path.Base(image)
	for _, p := range []string{"vmlinuz-", "vmlinux-", "kernel-", "bzImage-"} {
		if r, ok := strings.CutPrefix(base, p); ok && r != "" {
			return r
		}
	}
	return ""
}

// EntryFor returns the entry that boots kernel release: a normal (not
// recovery) entry whose id names the release, such as Debian's
// gnulinux-<release>-advanced-<uuid> in the "Advanced options" submenu.
// The "simple" entry at the top of Debian's menu is never chosen: it
// always boots the newest kernel, so what it starts changes when a kernel
// is installed.
func (c *GRUBConfig) EntryFor(release string) (GRUBEntry, error) {
	var found []GRUBEntry
	for _, e := range c.Entries {
		if e.Release != release || e.Recovery {
			continue
		}
		if e.ID != "" && !strings.Contains(e.ID, release) {
			continue // e.g. gnulinux-simple-<uuid>: not bound to the release
		}
		if e.ID == "" && !strings.Contains(e.Title, release) {
			continue
		}
		found = append(found, e)
	}
	if len(found) == 0 {
		return GRUBEntry{}, fmt.Errorf("bootloader: grub.cfg has no (non-recovery) entry for kernel %s: is it installed, and did update-grub run?", release)
	}
	// One, or several (e.g. a custom entry besides Debian's): the first
	// in menu order.
	return found[0], nil
}

// Resolve returns the entry GRUB starts for a default value (an entry
// path of ids, titles or numbers joined by '>'; "" is entry 0).
func (c *GRUBConfig) Resolve(def string) (GRUBEntry, error) {
	if def == "" {
		def = "0"
	}
	items := c.top
	parts := strings.Split(def, ">")
	for i, part := range parts {
		var it *grubItem
		if n, err := strconv.Atoi(part); err == nil && n >= 0 && n < len(items) && strconv.Itoa(n) == part {
			it = items[n]
		} else {
			for _, x := range items {
				if x.id == part || x.title == part {
					it = x
					break
				}
			}
		}
		if it == nil {
			return GRUBEntry{}, fmt.Errorf("bootloader: GRUB entry %q is not in grub.cfg (GRUB would fall back to the first entry)", def)
		}
		if i == len(parts)-1 {
			if it.entry == nil {
				return GRUBEntry{}, fmt.Errorf("bootloader: GRUB entry %q is a submenu, not a kernel", def)
			}
			return *it.entry, nil
		}
		if it.entry != nil {
			return GRUBEntry{}, fmt.Errorf("bootloader: GRUB entry %q: %q is no submenu", def, part)
		}
		items = it.children
	}
	return GRUBEntry{}, fmt.Errorf("bootloader: GRUB entry %q is empty", def)
}

// shellWords splits a grub.cfg line into words the way GRUB's script
// parser does for what grub-mkconfig writes: single quotes (literal),
// double quotes (with \", \\, \$ escapes) and backslash escapes; a ';'
// outside quotes ends a command (the rest of the line is dropped, except
// that a trailing '{' is kept as a word).
func shellWords(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated single quote")
			}
			cur.WriteString(line[i+1 : i+1+j])
			inWord = true
			i += j + 1
		case c == '"':
			inWord = true
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) && strings.IndexByte(`"\$`, line[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(line[i])
			}
			if i >= len(line) {
				return nil, fmt.Errorf("unterminated double quote")
			}
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			inWord = true
		case c == ' ' || c == '\t':
			flush()
		case c == ';':
			flush()
			if strings.HasSuffix(strings.TrimSpace(line), "{") {
				words = append(words, "{")
			}
			return words, nil
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	flush()
	return words, nil
}
