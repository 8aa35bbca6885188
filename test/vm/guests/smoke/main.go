// Command smoke runs inside a VM and reports what the harness smoke test
// checks: the running kernel release, /proc/version, the active LSMs, and
// (with -fetch URL) the body of an HTTP GET to a server on the host.
package main

import (
	"flag"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kroll-dev/kroll/test/vm/guest"
)

func main() {
	fetch := flag.String("fetch", "", "URL to GET and report")
	flag.Parse()

	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		guest.Fail("uname: %v", err)
	}
	guest.Report("uname", unix.ByteSliceToString(uts.Release[:]))
	pv, err := os.ReadFile("/proc/version")
	if err != nil {
		guest.Fail("read /proc/version: %v", err)
	}
	guest.Report("proc_version", strings.TrimSpace(string(pv)))
	lsm, err := os.ReadFile("/sys/kernel/security/lsm")
	if err != nil {
		guest.Fail("read lsm: %v", err)
	}
	guest.Report("lsm", strings.Split(strings.TrimSpace(string(lsm)), ","))

	if *fetch != "" {
		c := &http.Client{Timeout: 20 * time.Second}
		resp, err := c.Get(*fetch)
		if err != nil {
			guest.Fail("GET %s: %v", *fetch, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			guest.Fail("GET %s: %v", *fetch, err)
		}
		guest.Report("fetched", string(body))
	}
}
