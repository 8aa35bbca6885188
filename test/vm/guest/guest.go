// Package guest is the in-VM side of the vm harness: a test program running
// inside a qemu guest reports results with it, one line per result on the
// serial console, which the harness on the host parses.
package guest

import (
	"encoding/json"
	"fmt"
	"os"
)

// Marker starts every result line on the console.
const Marker = "KROLL-RESULT "

// Report prints one result: key and the JSON encoding of value.
func Report(key string, value any) {
	b, err := json.Marshal(value)
	if err != nil {
		b, _ = json.Marshal(fmt.Sprintf("unencodable value: %v", err))
	}
	// One write so that the line is not torn by concurrent console output.
	_, _ = os.Stdout.Write([]byte("\n" + Marker + key + " " + string(b) + "\n"))
}

// Fail reports a failure under key "error" and exits with status 1.
func Fail(format string, args ...any) {
	Report("error", fmt.Sprintf(format, args...))
	os.Exit(1)
}
