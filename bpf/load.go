//go:build (386 || amd64 || arm64) && linux

package bpf

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Map and program names in the objects (kroll.h and the .c files).
const (
	mapConfig   = "kroll_config"
	mapAllow    = "kroll_allow"
	mapEvents   = "kroll_events"
	mapCounters = "kroll_counters"
	mapDeny     = "kroll_deny"
)

// kernelTypes caches the running kernel's BTF, which loading needs for
// CO-RE relocations and to find the LSM hooks: parsing it is most of the
// cost of a first Load (hundreds of milliseconds under emulation), so
// every Load and Probe of a process shares it — until ReleaseCaches.
var kernelTypes atomic.Pointer[btf.Cache]

func init() { kernelTypes.Store(btf.NewCache()) }

// ReleaseCaches drops the parsed kernel BTF (several MiB in a daemon's
// resident memory). A long-running agent calls it after it loaded its
// policies; the next load parses the BTF again.
func ReleaseCaches() { kernelTypes.Store(btf.NewCache()) }

type kindSpec struct {
	load  func() (*ebpf.CollectionSpec, error)
	progs map[Op]string
	deny  bool

	once sync.Once
	spec *ebpf.CollectionSpec // parsed once, copied for each use
	err  error
}

var kindSpecs = map[Kind]*kindSpec{
	KindSocketFamily: {load: loadSocketFamily, progs: map[Op]string{
		OpSocketCreate: socketFamilyProgKrollSocketCreate,
		OpSocketBind:   socketFamilyProgKrollSocketBind,
	}},
	KindModuleRequest: {load: loadModuleRequest, progs: map[Op]string{OpModuleRequest: moduleRequestProgKrollModuleRequest}, deny: true},
	KindUsernsCreate:  {load: loadUsernsCreate, progs: map[Op]string{OpUsernsCreate: usernsCreateProgKrollUsernsCreate}},
	KindFileOpen:      {load: loadFileOpen, progs: map[Op]string{OpFileOpen: fileOpenProgKrollFileOpen}, deny: true},
}

// Spec returns (a copy of) the kind's collection spec, e.g. to set map
// pinning before loading it with ebpf.NewCollectionWithOptions.
func Spec(kind Kind) (*ebpf.CollectionSpec, error) {
	k, ok := kindSpecs[kind]
	if !ok {
		return nil, fmt.Errorf("bpf: unknown kind %d", uint32(kind))
	}
	k.once.Do(func() { k.spec, k.err = k.load() })
	if k.err != nil {
		return nil, fmt.Errorf("bpf: %s: %w", kind, k.err)
	}
	return k.spec.Copy(), nil
}

// Objects are one kind's loaded program(s) and maps. The fields are
// exported so that a caller that pinned them can rebuild Objects from the
// pins (programs are then not needed: the pinned links keep them).
type Objects struct {
	Kind Kind
	// Programs by the operation (LSM hook) they hook: socket_create and
	// socket_bind for socket-family, one program for the other kinds.
	Programs map[Op]*ebpf.Program
	// Config is an ARRAY with one Config.
	Config *ebpf.Map
	// Allow is a HASH of Key → uint8(1): executables the policy exempts.
	Allow *ebpf.Map
	// Deny is a HASH of [NameLen]byte → uint8(1) (module-request) or
	// Key → uint8(1) (file-open); nil for the other kinds.
	Deny *ebpf.Map
	// Events is the RINGBUF of Events (ringbuf.NewReader, ParseEvent).
	Events *ebpf.Map
	// Counters is a PERCPU_ARRAY with one Counters per CPU.
	Counters *ebpf.Map
}

// Load loads a kind's programs and maps into the kernel, not attached and
// with a zero (inert) Config. opts may be nil; unless opts.Cache is set,
// the kernel's BTF is parsed once per process and shared by all loads.
func Load(kind Kind, opts *ebpf.CollectionOptions) (*Objects, error) {
	spec, err := Spec(kind)
	if err != nil {
		return nil, err
	}
	k := kindSpecs[kind]
	var o2 ebpf.CollectionOptions
	if opts != nil {
		o2 = *opts
	}
	if o2.Cache == nil {
		o2.Cache = kernelTypes.Load()
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, o2)
	if err != nil {
		return nil, fmt.Errorf("bpf: load %s: %w", kind, err)
	}
	o := &Objects{
		Kind:     kind,
		Programs: make(map[Op]*ebpf.Program),
		Config:   coll.Maps[mapConfig],
		Allow:    coll.Maps[mapAllow],
		Events:   coll.Maps[mapEvents],
		Counters: coll.Maps[mapCounters],
	}
	if k.deny {
		o.Deny = coll.Maps[mapDeny]
	}
	for op, name := range k.progs {
		o.Programs[op] = coll.Programs[name]
	}
	return o, nil
}

// Maps returns the non-nil maps by their names in the object, e.g. for
// pinning.
func (o *Objects) Maps() map[string]*ebpf.Map {
	m := make(map[string]*ebpf.Map)
	for name, mp := range map[string]*ebpf.Map{
		mapConfig: o.Config, mapAllow: o.Allow, mapDeny: o.Deny,
		mapEvents: o.Events, mapCounters: o.Counters,
	} {
		if mp != nil {
			m[name] = mp
		}
	}
	return m
}

// Attach attaches the programs of the operations in ops (see Kind.Ops) to
// their LSM hooks and returns their links. Closing a link detaches its
// program (unless the link is pinned). On error nothing stays attached.
//
// Config.Ops still decides what an attached program acts on; attaching
// only the hooks a policy uses saves the others' cost, which every call
// of the hook pays (a BPF trampoline and the program's checks, e.g. on
// every socket(2) for socket_create). A policy whose operations change
// then attaches or closes links, still without reloading anything.
func (o *Objects) Attach(ops Op) (map[Op]link.Link, error) {
	if ops&o.Kind.Ops() == 0 || ops&^o.Kind.Ops() != 0 {
		return nil, fmt.Errorf("bpf: attach %s: operations %s, want some of %s", o.Kind, ops, o.Kind.Ops())
	}
	links := make(map[Op]link.Link)
	for op, p := range o.Programs {
		if ops&op == 0 {
			continue
		}
		l, err := link.AttachLSM(link.LSMOptions{Program: p})
		if err != nil {
			for _, l := range links {
				l.Close()
			}
			return nil, fmt.Errorf("bpf: attach %s program %s: %w", o.Kind, programName(p), err)
		}
		links[op] = l
	}
	return links, nil
}

func programName(p *ebpf.Program) string {
	if info, err := p.Info(); err == nil {
		return info.Name
	}
	return p.String()
}

// SetConfig replaces the program's configuration; it takes effect for the
// next hooked operation.
func (o *Objects) SetConfig(c Config) error {
	if err := o.Config.Put(uint32(0), c); err != nil {
		return fmt.Errorf("bpf: %s: set config: %w", o.Kind, err)
	}
	return nil
}

// ReadConfig returns the program's configuration.
func (o *Objects) ReadConfig() (Config, error) {
	var c Config
	if err := o.Config.Lookup(uint32(0), &c); err != nil {
		return c, fmt.Errorf("bpf: %s: read config: %w", o.Kind, err)
	}
	return c, nil
}

// SetMode switches between Audit and Enforce, keeping the rest of the
// configuration.
func (o *Objects) SetMode(m Mode) error {
	c, err := o.ReadConfig()
	if err != nil {
		return err
	}
	c.Mode = m
	return o.SetConfig(c)
}

// ReadCounters returns the program's counters summed over all CPUs.
func (o *Objects) ReadCounters() (Counters, error) {
	var per []Counters
	if err := o.Counters.Lookup(uint32(0), &per); err != nil {
		return Counters{}, fmt.Errorf("bpf: %s: read counters: %w", o.Kind, err)
	}
	var sum Counters
	for _, c := range per {
		sum.Allowed += c.Allowed
		sum.Audited += c.Audited
		sum.Denied += c.Denied
		sum.Lost += c.Lost
	}
	return sum, nil
}

// SetAllowed makes the allow-list exactly keys (see ExeKey).
func (o *Objects) SetAllowed(keys []Key) error {
	if err := syncSet(o.Allow, keys, false); err != nil {
		return fmt.Errorf("bpf: %s: allow-list: %w", o.Kind, err)
	}
	return nil
}

// SetDeniedFiles makes the file-open deny map exactly keys (see ExeKey).
func (o *Objects) SetDeniedFiles(keys []Key) error {
	if o.Kind != KindFileOpen {
		return fmt.Errorf("bpf: %s has no denied files", o.Kind)
	}
	if err := syncSet(o.Deny, keys, true); err != nil {
		return fmt.Errorf("bpf: %s: deny map: %w", o.Kind, err)
	}
	return nil
}

// SetDeniedModules makes the module-request deny map exactly names. A
// request matches an entry if it equals it, or if its part before the
// first '(' does: "crypto-authencesn" matches the crypto API's request
// "crypto-authencesn(hmac(sha256),cbc(aes))". There is no other prefix
// matching.
func (o *Objects) SetDeniedModules(names []string) error {
	if o.Kind != KindModuleRequest {
		return fmt.Errorf("bpf: %s has no denied modules", o.Kind)
	}
	keys := make([][NameLen]byte, 0, len(names))
	for _, n := range names {
		if n == "" || len(n) > MaxModuleName {
			return fmt.Errorf("bpf: module name %q: want 1 to %d bytes", n, MaxModuleName)
		}
		for _, c := range []byte(n) {
			if c == 0 || c == '(' {
				return fmt.Errorf("bpf: module name %q: contains %q", n, c)
			}
		}
		keys = append(keys, ModuleName(n))
	}
	if err := syncSet(o.Deny, keys, true); err != nil {
		return fmt.Errorf("bpf: %s: deny map: %w", o.Kind, err)
	}
	return nil
}

// syncSet makes the keys of a HASH map with uint8 values exactly keys.
// Entries are added before stale ones are deleted when addFirst (deny
// maps: never briefly deny less than both the old and the new set), and
// the other way round otherwise (allow-lists: never briefly allow more).
func syncSet[K comparable](m *ebpf.Map, keys []K, addFirst bool) error {
	want := make(map[K]bool, len(keys))
	for _, k := range keys {
		want[k] = true
	}
	var stale []K
	var k K
	var v uint8
	it := m.Iterate()
	for it.Next(&k, &v) {
		if !want[k] {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	add := func() error {
		for k := range want {
			if err := m.Put(k, uint8(1)); err != nil {
				return err
			}
		}
		return nil
	}
	if addFirst {
		if err := add(); err != nil {
			return err
		}
	}
	for _, k := range stale {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	if !addFirst {
		return add()
	}
	return nil
}

// Close releases the programs and maps (not links: attached programs stay
// attached while their links exist).
func (o *Objects) Close() error {
	var errs []error
	for _, p := range o.Programs {
		if p != nil {
			errs = append(errs, p.Close())
		}
	}
	for _, m := range o.Maps() {
		errs = append(errs, m.Close())
	}
	return errors.Join(errs...)
}

// Probe proves that bpf LSM programs work here: it loads a program on
// socket_create that never denies, attaches it, creates a socket and
// checks that the program ran. A kernel without bpf in its active LSMs
// (the lsm= boot parameter) loads and attaches such programs but never
// runs them; Probe reports that. Errors wrap ErrUnavailable.
func Probe() error {
	spec, err := loadProbe()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if err := spec.Variables["probe_tgid"].Set(uint32(os.Getpid())); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	var objs probeObjects
	if err := spec.LoadAndAssign(&objs, &ebpf.CollectionOptions{Cache: kernelTypes.Load()}); err != nil {
		return fmt.Errorf("%w: load LSM program: %w", ErrUnavailable, err)
	}
	defer objs.Close()
	l, err := link.AttachLSM(link.LSMOptions{Program: objs.KrollProbe})
	if err != nil {
		return fmt.Errorf("%w: attach LSM program: %w", ErrUnavailable, err)
	}
	defer l.Close()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err == nil {
		unix.Close(fd)
	}
	var hits uint64
	if err := objs.KrollHits.Lookup(uint32(0), &hits); err != nil {
		return fmt.Errorf("%w: read probe counter: %w", ErrUnavailable, err)
	}
	if hits == 0 {
		return fmt.Errorf("%w: an attached LSM program never ran: bpf is not an active LSM (add bpf to the lsm= kernel parameter, see /sys/kernel/security/lsm)", ErrUnavailable)
	}
	return nil
}
