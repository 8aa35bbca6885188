package kcmdline

import (
	"reflect"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  ro  quiet\n", []string{"ro", "quiet"}},
		{`a="b c" d`, []string{`a="b c"`, "d"}},
		{"x -- init arg", []string{"x", "--", "init", "arg"}},
	}
	for _, tt := range tests {
		if got := Split(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Split(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCheckAdd(t *testing.T) {
	tests := []struct {
		p    string
		want string // "" = valid; else a substring of the problem
	}{
		{"mitigations=auto", ""},
		{"nosmt", ""},
		{"lsm=lockdown,capability,bpf", ""},
		{"i915.enable_psr=0", ""},
		{"console=ttyS0,115200n8", ""},
		{"", "empty"},
		{"a b", "without spaces"},
		{`a="b"`, "quotes"},
		{"a='b'", "quotes"},
		{`a\b`, "backslashes"},
		{"a=\x01", "printable"},
		{"a=é", "printable"},
		{"=x", "name must"},
		{".x", "name must"},
		{"a/b=1", "name must"},
		{"systemd.unit=rescue.target", "one-shot"},
		{"systemd.run-success_action=reboot", "one-shot"},
		{"single", "one-shot"},
		{"BOOT_IMAGE=/vmlinuz", "one-shot"},
		{"initrd=/x", "one-shot"},
		{"kroll.oneshot", "one-shot"},
		{"x=" + strings.Repeat("a", MaxParamLen), "at most"},
	}
	for _, tt := range tests {
		got := CheckAdd(tt.p)
		if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
			t.Errorf("CheckAdd(%q) = %q, want %q", tt.p, got, tt.want)
		}
	}
}

func TestCheckRemove(t *testing.T) {
	tests := []struct {
		name string
		want string
	}{
		{"nosmt", ""},
		{"mitigations", ""},
		{"lsm", ""},
		{"", "empty"},
		{"mitigations=off", "name only"},
		{"a b", "must consist"},
		{"rd.break", "one-shot"},
	}
	for _, tt := range tests {
		got := CheckRemove(tt.name)
		if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
			t.Errorf("CheckRemove(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestApply(t *testing.T) {
	const base = "root=/dev/vda1 ro console=ttyS0 console=tty0 mitigations=off nosmt lsm=lockdown,yama,bpf quiet"
	tests := []struct {
		name        string
		cmdline     string
		add, remove []string
		want        string
		err         string
	}{
		{"no change", base, nil, nil, base, ""},
		{"add new", base, []string{"slab_nomerge"}, nil, base + " slab_nomerge", ""},
		{"add present twice keeps one", base, []string{"nosmt", "nosmt"}, nil, base, ""},
		{"remove flag", base, nil, []string{"nosmt"}, "root=/dev/vda1 ro console=ttyS0 console=tty0 mitigations=off lsm=lockdown,yama,bpf quiet", ""},
		{"remove every value", base, nil, []string{"console"}, "root=/dev/vda1 ro mitigations=off nosmt lsm=lockdown,yama,bpf quiet", ""},
		{"replace a value", base, []string{"mitigations=auto"}, []string{"mitigations"},
			"root=/dev/vda1 ro console=ttyS0 console=tty0 nosmt lsm=lockdown,yama,bpf quiet mitigations=auto", ""},
		{"dash and underscore", "a page-alloc.shuffle=1 b", nil, []string{"page_alloc.shuffle"}, "a b", ""},
		{"remove absent", "a b", nil, []string{"nosmt"}, "a b", ""},
		{"init args stay last", "ro quiet -- single x", []string{"nosmt"}, []string{"quiet"}, "ro nosmt -- single x", ""},
		{"quoted value removed", `ro dyndbg="file x +p" q`, nil, []string{"dyndbg"}, "ro q", ""},
		{"bad add", base, []string{"a b"}, nil, "", "to add"},
		{"bad remove", base, nil, []string{"a=b"}, "", "to remove"},
		{"too long", strings.Repeat("x", MaxLen-3), []string{"abcd"}, nil, "", "more than the kernel's"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Apply(tt.cmdline, tt.add, tt.remove)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Apply = %q, %v; want error %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Apply = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestLSMs(t *testing.T) {
	tests := []struct {
		cmdline string
		want    []string
		set     bool
	}{
		{"ro quiet", nil, false},
		{"lsm=lockdown,yama,bpf", []string{"lockdown", "yama", "bpf"}, true},
		{"lsm=a lsm=b,bpf", []string{"b", "bpf"}, true},
		{`"lsm=x,bpf"`, []string{"x", "bpf"}, true},
		{"lsm=", nil, true},
		{"ro -- lsm=bpf", nil, false},
	}
	for _, tt := range tests {
		got, set := LSMs(tt.cmdline)
		if !reflect.DeepEqual(got, tt.want) || set != tt.set {
			t.Errorf("LSMs(%q) = %q, %v; want %q, %v", tt.cmdline, got, set, tt.want, tt.set)
		}
	}
}

func TestKeepsBPF(t *testing.T) {
	const withLSM = "ro lsm=lockdown,capability,yama,bpf quiet"
	tests := []struct {
		name        string
		cmdline     string
		add, remove []string
		bpfActive   bool
		want        string // "" = allowed
	}{
		{"no lsm change", withLSM, []string{"nosmt"}, []string{"quiet"}, true, ""},
		{"removes lsm", withLSM, nil, []string{"lsm"}, true, "removes lsm="},
		{"sets lsm without bpf", withLSM, []string{"lsm=lockdown,yama"}, []string{"lsm"}, true, "without bpf"},
		{"appends lsm without bpf (last wins)", withLSM, []string{"lsm=lockdown"}, nil, true, "without bpf"},
		{"replaces lsm keeping bpf", withLSM, []string{"lsm=landlock,lockdown,yama,bpf"}, []string{"lsm"}, true, ""},
		{"adds lsm with bpf to a built-in order", "ro", []string{"lsm=lockdown,bpf"}, nil, true, ""},
		{"adds lsm without bpf to a built-in order", "ro", []string{"lsm=lockdown"}, nil, true, "without bpf"},
		{"removes an absent lsm", "ro", nil, []string{"lsm"}, true, ""},
		{"bpf not in force", withLSM, nil, []string{"lsm"}, false, ""},
		{"bpf not in force, lsm without bpf", withLSM, []string{"lsm=yama"}, []string{"lsm"}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := KeepsBPF(tt.cmdline, tt.add, tt.remove, tt.bpfActive)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("KeepsBPF = %v, want %q", err, tt.want)
			}
		})
	}
}
