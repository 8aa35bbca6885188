// Command demo is `make demo` and `make demo-sim`: kroll's main job on one
// machine, from a fresh clone. It starts a 3-node coordinator quorum on
// loopback (the real kroll-coordinator binaries) and an artifact server
// with a real Debian kernel package; agents in two datacenters — qemu VMs
// booting an older Debian kernel (demo), or many simulated hosts in this
// process (demo-sim) — register; a signed Copy Fail mitigation is pushed in
// audit mode, then enforce mode, and its coverage shown; then the newer
// kernel rolls through with `krollctl rollout watch` on screen, and a
// summary table ends it. It checks first that the commands it needs are
// installed (naming the missing Debian packages; `make demo` installs
// them). Everything it starts is stopped on exit, also on Ctrl-C; its
// temporary directory is removed after a success and kept, with every
// process's log, after a failure.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	var o options
	flag.BoolVar(&o.sim, "sim", false, "simulated hosts instead of VMs (make demo-sim)")
	flag.IntVar(&o.perDC, "per-dc", 2, "agents per datacenter (VMs, or simulated hosts ×25 with --sim)")
	flag.StringVar(&o.bin, "bin", "bin", "directory with kroll-coordinator, krollctl and kroll-agent")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := newDemo(o, os.Stdout)
	err := d.run(ctx)
	d.cleanup(err != nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}
