package schedule

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// mustWindow parses s or fails the test.
func mustWindow(t testing.TB, s string) Window {
	t.Helper()
	w, err := ParseWindow(s)
	if err != nil {
		t.Fatalf("ParseWindow(%q): %v", s, err)
	}
	return w
}

// mustTime parses an RFC 3339 time or fails the test.
func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("time.Parse(%q): %v", s, err)
	}
	return v
}

func TestParseWindowCanonical(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"always", "always"},
		{"Mon-Sun 02:00-05:00 Europe/Berlin", "Mon-Sun 02:00-05:00 Europe/Berlin"},
		{"Sat,Sun 01:00-04:30 America/New_York", "Sat,Sun 01:00-04:30 America/New_York"},
		{"Mon-Fri 22:00-02:00 Asia/Tokyo", "Mon-Fri 22:00-02:00 Asia/Tokyo"},
		{"Sat-Sun 01:00-04:30 America/New_York", "Sat,Sun 01:00-04:30 America/New_York"},
		{"Sun,Sat 01:00-04:30 UTC", "Sat,Sun 01:00-04:30 UTC"},
		{"Mon,Tue,Wed 00:00-23:59 UTC", "Mon-Wed 00:00-23:59 UTC"},
		{"Fri-Mon 23:30-00:15 Etc/GMT+5", "Mon,Fri-Sun 23:30-00:15 Etc/GMT+5"},
		{"Sun-Sat 12:00-11:59 UTC", "Mon-Sun 12:00-11:59 UTC"},
		{"Wed 00:00-00:01 America/Argentina/Buenos_Aires", "Wed 00:00-00:01 America/Argentina/Buenos_Aires"},
		{"Mon,Wed-Fri,Sun 03:00-04:00 Australia/Lord_Howe", "Mon,Wed-Fri,Sun 03:00-04:00 Australia/Lord_Howe"},
		{"Tue,Mon 09:05-17:55 America/Port-au-Prince", "Mon,Tue 09:05-17:55 America/Port-au-Prince"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			w := mustWindow(t, tt.in)
			if got := w.String(); got != tt.want {
				t.Fatalf("String() = %q, want %q", got, tt.want)
			}
			again := mustWindow(t, w.String())
			if !again.Equal(w) || again.String() != tt.want {
				t.Fatalf("round trip: %q → %q", tt.want, again.String())
			}
			if got := w.IsAlways(); got != (tt.in == "always") {
				t.Errorf("IsAlways() = %v", got)
			}
		})
	}
}

func TestParseWindowErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "empty"},
		{"garbage", "whenever", `1 fields; want "DAYS HH:MM-HH:MM ZONE"`},
		{"capitalised always", "Always", "1 fields"},
		{"missing zone", "Mon-Sun 02:00-05:00", "missing time zone"},
		{"two fields no times", "Mon Europe/Berlin", "2 fields"},
		{"too many fields", "Mon-Sun 02:00-05:00 Europe/Berlin extra", "4 fields"},
		{"double space", "Mon-Sun  02:00-05:00 Europe/Berlin", "single spaces"},
		{"leading space", " Mon-Sun 02:00-05:00 Europe/Berlin", "single spaces"},
		{"trailing space", "Mon-Sun 02:00-05:00 Europe/Berlin ", "single spaces"},
		{"tab", "Mon-Sun\t02:00-05:00 Europe/Berlin", "2 fields"},
		{"bad day", "Mon-Sux 02:00-05:00 Europe/Berlin", `range "Mon-Sux": unknown day "Sux"`},
		{"lower-case day", "mon 02:00-05:00 UTC", `unknown day "mon"`},
		{"long day name", "Monday 02:00-05:00 UTC", `unknown day "Monday"`},
		{"empty day item", "Mon,,Tue 02:00-05:00 UTC", "empty item"},
		{"trailing comma", "Mon, 02:00-05:00 UTC", "empty item"},
		{"range of one day", "Mon-Mon 02:00-05:00 UTC", `starts and ends on the same day; write "Mon"`},
		{"three-part range", "Mon-Tue-Wed 02:00-05:00 UTC", `bad range "Mon-Tue-Wed"`},
		{"open range", "Mon- 02:00-05:00 UTC", `unknown day ""`},
		{"duplicate day", "Mon,Mon 02:00-05:00 UTC", "Mon listed more than once"},
		{"overlapping ranges", "Mon-Fri,Wed 02:00-05:00 UTC", "Wed listed more than once"},
		{"hour 25", "Mon 25:00-05:00 UTC", `start: "25:00": hour 25 out of range 00..23`},
		{"hour 24", "Mon 22:00-24:00 UTC", `end: "24:00": hour 24 out of range 00..23 (midnight is 00:00)`},
		{"minute 60", "Mon 02:60-05:00 UTC", `minute 60 out of range 00..59`},
		{"one-digit hour", "Mon 2:00-05:00 UTC", `start: "2:00": want HH:MM`},
		{"seconds", "Mon 02:00:00-05:00:00 UTC", `want HH:MM`},
		{"no dash", "Mon 02:00 UTC", `times "02:00": want HH:MM-HH:MM`},
		{"signed", "Mon +2:00-05:00 UTC", `want HH:MM`},
		{"start equals end", "Mon-Sun 02:00-02:00 Europe/Berlin", "start and end are both 02:00"},
		{"unknown zone", "Mon 02:00-05:00 Mars/Olympus_Mons", `zone "Mars/Olympus_Mons": unknown time zone`},
		{"Local", "Mon 02:00-05:00 Local", "local zone is not allowed"},
		{"posix tree", "Mon 02:00-05:00 posix/Europe/Berlin", `drop the "posix/" prefix`},
		{"right tree", "Mon 02:00-05:00 right/UTC", `drop the "right/" prefix`},
		{"absolute path", "Mon 02:00-05:00 /etc/localtime", "empty path component"},
		{"dot dot", "Mon 02:00-05:00 Europe/../Europe/Berlin", `does not start with a letter`},
		{"double slash", "Mon 02:00-05:00 Europe//Berlin", "empty path component"},
		{"dot in name", "Mon 02:00-05:00 zone.tab", `character '.'`},
		{"directory", "Mon 02:00-05:00 Europe", "unknown time zone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := ParseWindow(tt.in)
			if err == nil {
				t.Fatalf("ParseWindow(%q) = %q, want error containing %q", tt.in, w, tt.want)
			}
			var we *WindowError
			if !errors.As(err, &we) || we.Input != tt.in {
				t.Fatalf("error %v (%T) is not a *WindowError for the input", err, err)
			}
			if !strings.HasPrefix(err.Error(), "invalid window ") {
				t.Errorf("error %q lacks the prefix", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if !w.IsAlways() {
				t.Errorf("failed parse returned non-zero window %q", w)
			}
		})
	}
}

func TestWindowText(t *testing.T) {
	type doc struct {
		W Window `json:"window"`
	}
	tests := []struct {
		w, json string
	}{
		{"Mon-Sun 02:00-05:00 Europe/Berlin", `{"window":"Mon-Sun 02:00-05:00 Europe/Berlin"}`},
		{"always", `{"window":"always"}`},
	}
	for _, tt := range tests {
		t.Run(tt.w, func(t *testing.T) {
			b, err := json.Marshal(doc{W: mustWindow(t, tt.w)})
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.json {
				t.Fatalf("Marshal = %s, want %s", b, tt.json)
			}
			var d doc
			if err := json.Unmarshal(b, &d); err != nil {
				t.Fatal(err)
			}
			if d.W.String() != tt.w {
				t.Fatalf("Unmarshal → %q, want %q", d.W, tt.w)
			}
		})
	}
	t.Run("zero marshals as always", func(t *testing.T) {
		b, err := json.Marshal(doc{})
		if err != nil || string(b) != `{"window":"always"}` {
			t.Fatalf("Marshal(zero) = %s, %v", b, err)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		d := doc{W: mustWindow(t, "Mon 01:00-02:00 UTC")}
		err := json.Unmarshal([]byte(`{"window":"Mon 01:00-01:00 UTC"}`), &d)
		var we *WindowError
		if !errors.As(err, &we) {
			t.Fatalf("Unmarshal error = %v, want a *WindowError", err)
		}
		if d.W.String() != "Mon 01:00-02:00 UTC" {
			t.Errorf("failed Unmarshal changed the window to %q", d.W)
		}
	})
}

func TestWindowEqual(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"always", "always", true},
		{"Sat,Sun 01:00-02:00 UTC", "Sun,Sat 01:00-02:00 UTC", true},
		{"Sat,Sun 01:00-02:00 UTC", "Sat,Sun 01:00-02:00 Etc/UTC", false},
		{"Sat,Sun 01:00-02:00 UTC", "Sat,Sun 01:00-02:01 UTC", false},
		{"Sat,Sun 01:00-02:00 UTC", "Sat 01:00-02:00 UTC", false},
		{"Sat,Sun 01:00-02:00 UTC", "always", false},
		{"always", "Mon-Sun 00:00-23:59 UTC", false},
	}
	for _, tt := range tests {
		if got := mustWindow(t, tt.a).Equal(mustWindow(t, tt.b)); got != tt.want {
			t.Errorf("%q.Equal(%q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
	if !(Window{}).Equal(mustWindow(t, "always")) {
		t.Error("zero Window is not equal to always")
	}
}

func TestContains(t *testing.T) {
	const (
		berlin   = "Mon-Sun 02:00-05:00 Europe/Berlin"
		gap      = "Mon-Sun 02:00-03:00 Europe/Berlin"
		intoGap  = "Mon-Sun 02:30-04:00 Europe/Berlin"
		repeated = "Sun 02:00-02:30 Europe/Berlin"
		split    = "Sun 01:00-02:30 Europe/Berlin"
		tokyo    = "Mon-Fri 22:00-02:00 Asia/Tokyo"
		nyWeek   = "Sat,Sun 01:00-04:30 America/New_York"
		nyGap    = "Sun 02:00-03:00 America/New_York"
		nyRep    = "Sun 01:00-02:00 America/New_York"
	)
	tests := []struct {
		name, window, at string
		want             bool
	}{
		{"always", "always", "2026-01-01T00:00:00Z", true},
		{"zero window", "", "2026-01-01T00:00:00Z", true},

		{"berlin start inclusive", berlin, "2026-11-27T02:00:00+01:00", true},
		{"berlin before start", berlin, "2026-11-27T01:59:59+01:00", false},
		{"berlin last second", berlin, "2026-11-27T04:59:59+01:00", true},
		{"berlin end exclusive", berlin, "2026-11-27T05:00:00+01:00", false},
		{"berlin given in UTC", berlin, "2026-11-27T01:30:00Z", true},
		{"berlin given in other zone", berlin, "2026-11-26T20:30:00-05:00", true},
		{"berlin summer uses CEST", berlin, "2026-07-01T00:30:00Z", true},
		{"berlin summer 01:30 UTC is 03:30", berlin, "2026-07-01T01:30:00Z", true},
		{"berlin summer 03:00 UTC is 05:00", berlin, "2026-07-01T03:00:00Z", false},

		// Europe/Berlin spring forward, 2026-03-29 02:00 CET → 03:00 CEST (01:00Z).
		{"spring gap: last CET second", gap, "2026-03-29T00:59:59Z", false},
		{"spring gap: first CEST instant", gap, "2026-03-29T01:00:00Z", false},
		{"spring gap: CEST 03:30", gap, "2026-03-29T01:30:00Z", false},
		{"spring gap: day before", gap, "2026-03-28T02:30:00+01:00", true},
		{"spring gap: day after", gap, "2026-03-30T02:30:00+02:00", true},
		{"into gap: before jump", intoGap, "2026-03-29T00:59:59Z", false},
		{"into gap: opens at jump", intoGap, "2026-03-29T01:00:00Z", true},
		{"into gap: 03:59 CEST", intoGap, "2026-03-29T03:59:00+02:00", true},
		{"into gap: 04:00 CEST", intoGap, "2026-03-29T04:00:00+02:00", false},
		{"spring berlin 02:00-05:00 opens at 03:00", berlin, "2026-03-29T01:00:00Z", true},
		{"spring berlin 01:59 CET", berlin, "2026-03-29T00:59:59Z", false},

		// Europe/Berlin fall back, 2026-10-25 03:00 CEST → 02:00 CET (01:00Z).
		{"fall: 01:59 CEST", gap, "2026-10-24T23:59:59Z", false},
		{"fall: 02:00 CEST", gap, "2026-10-25T00:00:00Z", true},
		{"fall: 02:59 CEST", gap, "2026-10-25T00:59:59Z", true},
		{"fall: 02:00 CET", gap, "2026-10-25T01:00:00Z", true},
		{"fall: 02:59 CET", gap, "2026-10-25T01:59:59Z", true},
		{"fall: 03:00 CET", gap, "2026-10-25T02:00:00Z", false},
		{"fall repeated: 02:15 CEST", repeated, "2026-10-25T02:15:00+02:00", true},
		{"fall repeated: 02:45 CEST", repeated, "2026-10-25T02:45:00+02:00", false},
		{"fall repeated: 02:15 CET", repeated, "2026-10-25T02:15:00+01:00", true},
		{"fall repeated: 02:45 CET", repeated, "2026-10-25T02:45:00+01:00", false},
		{"fall split: 01:30 CEST", split, "2026-10-25T01:30:00+02:00", true},
		{"fall split: 02:29 CEST", split, "2026-10-25T02:29:59+02:00", true},
		{"fall split: 02:30 CEST", split, "2026-10-25T02:30:00+02:00", false},
		{"fall split: 02:00 CET", split, "2026-10-25T02:00:00+01:00", true},
		{"fall split: 02:30 CET", split, "2026-10-25T02:30:00+01:00", false},

		// America/New_York: 2026-03-08 02:00 EST → 03:00 EDT (07:00Z);
		// 2026-11-01 02:00 EDT → 01:00 EST (06:00Z).
		{"ny spring gap: 01:59 EST", nyGap, "2026-03-08T06:59:59Z", false},
		{"ny spring gap: 03:00 EDT", nyGap, "2026-03-08T07:00:00Z", false},
		{"ny weekend spring: 01:30 EST", nyWeek, "2026-03-08T01:30:00-05:00", true},
		{"ny weekend spring: 03:00 EDT", nyWeek, "2026-03-08T03:00:00-04:00", true},
		{"ny weekend spring: 04:29 EDT", nyWeek, "2026-03-08T04:29:59-04:00", true},
		{"ny weekend spring: 04:30 EDT", nyWeek, "2026-03-08T04:30:00-04:00", false},
		{"ny weekend: Friday", nyWeek, "2026-03-06T02:00:00-05:00", false},
		{"ny weekend: Saturday", nyWeek, "2026-03-07T02:00:00-05:00", true},
		{"ny fall: 00:59 EDT", nyRep, "2026-11-01T00:59:59-04:00", false},
		{"ny fall: 01:00 EDT", nyRep, "2026-11-01T01:00:00-04:00", true},
		{"ny fall: 01:59 EDT", nyRep, "2026-11-01T01:59:59-04:00", true},
		{"ny fall: 01:00 EST", nyRep, "2026-11-01T01:00:00-05:00", true},
		{"ny fall: 01:59 EST", nyRep, "2026-11-01T01:59:59-05:00", true},
		{"ny fall: 02:00 EST", nyRep, "2026-11-01T02:00:00-05:00", false},

		// Asia/Tokyo, crossing midnight; 2026-11-27 is a Friday.
		{"tokyo Fri 21:59", tokyo, "2026-11-27T21:59:59+09:00", false},
		{"tokyo Fri 22:00", tokyo, "2026-11-27T22:00:00+09:00", true},
		{"tokyo Sat 00:00 (Fri's window)", tokyo, "2026-11-28T00:00:00+09:00", true},
		{"tokyo Sat 01:59 (Fri's window)", tokyo, "2026-11-28T01:59:59+09:00", true},
		{"tokyo Sat 02:00", tokyo, "2026-11-28T02:00:00+09:00", false},
		{"tokyo Sat 23:00 (Sat not listed)", tokyo, "2026-11-28T23:00:00+09:00", false},
		{"tokyo Sun 01:00 (Sat not listed)", tokyo, "2026-11-29T01:00:00+09:00", false},
		{"tokyo Mon 01:00 (Sun not listed)", tokyo, "2026-11-30T01:00:00+09:00", false},
		{"tokyo Mon 12:00", tokyo, "2026-11-30T12:00:00+09:00", false},
		{"tokyo Mon 22:30", tokyo, "2026-11-30T22:30:00+09:00", true},
		{"tokyo Tue 01:00 (Mon's window)", tokyo, "2026-12-01T01:00:00+09:00", true},
		{"tokyo given in UTC", tokyo, "2026-11-27T13:00:00Z", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w Window
			if tt.window != "" {
				w = mustWindow(t, tt.window)
			}
			if got := w.Contains(mustTime(t, tt.at)); got != tt.want {
				t.Fatalf("%q.Contains(%s) = %v, want %v", w, tt.at, got, tt.want)
			}
		})
	}
}

func TestNext(t *testing.T) {
	tests := []struct {
		name, window, at string
		start, end       string // RFC 3339 in the window's zone
	}{
		{"before", "Mon-Sun 02:00-05:00 Europe/Berlin", "2026-11-26T12:00:00+01:00",
			"2026-11-27T02:00:00+01:00", "2026-11-27T05:00:00+01:00"},
		{"inside returns current", "Mon-Sun 02:00-05:00 Europe/Berlin", "2026-11-27T03:17:42Z",
			"2026-11-27T02:00:00+01:00", "2026-11-27T05:00:00+01:00"},
		{"at start", "Mon-Sun 02:00-05:00 Europe/Berlin", "2026-11-27T02:00:00+01:00",
			"2026-11-27T02:00:00+01:00", "2026-11-27T05:00:00+01:00"},
		{"at end is the next one", "Mon-Sun 02:00-05:00 Europe/Berlin", "2026-11-27T05:00:00+01:00",
			"2026-11-28T02:00:00+01:00", "2026-11-28T05:00:00+01:00"},
		{"spring: zero-length day skipped", "Mon-Sun 02:00-03:00 Europe/Berlin", "2026-03-28T12:00:00+01:00",
			"2026-03-30T02:00:00+02:00", "2026-03-30T03:00:00+02:00"},
		{"spring: opens at the jump", "Mon-Sun 02:30-04:00 Europe/Berlin", "2026-03-28T12:00:00+01:00",
			"2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"},
		{"spring: 02:00-05:00 lasts two hours", "Mon-Sun 02:00-05:00 Europe/Berlin", "2026-03-29T01:00:00+01:00",
			"2026-03-29T03:00:00+02:00", "2026-03-29T05:00:00+02:00"},
		{"spring: gap removed merges two days", "Mon-Sun 03:00-02:00 Europe/Berlin", "2026-03-28T12:00:00+01:00",
			"2026-03-28T03:00:00+01:00", "2026-03-30T02:00:00+02:00"},
		{"fall: repeated hour lasts two hours", "Mon-Sun 02:00-03:00 Europe/Berlin", "2026-10-24T12:00:00+02:00",
			"2026-10-25T02:00:00+02:00", "2026-10-25T03:00:00+01:00"},
		{"fall: inside second reading", "Mon-Sun 02:00-03:00 Europe/Berlin", "2026-10-25T02:30:00+01:00",
			"2026-10-25T02:00:00+02:00", "2026-10-25T03:00:00+01:00"},
		{"fall: first reading of 02:00-02:30", "Sun 02:00-02:30 Europe/Berlin", "2026-10-24T12:00:00+02:00",
			"2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00"},
		{"fall: second reading of 02:00-02:30", "Sun 02:00-02:30 Europe/Berlin", "2026-10-25T02:45:00+02:00",
			"2026-10-25T02:00:00+01:00", "2026-10-25T02:30:00+01:00"},
		{"fall: split window, first part", "Sun 01:00-02:30 Europe/Berlin", "2026-10-25T02:00:00+02:00",
			"2026-10-25T01:00:00+02:00", "2026-10-25T02:30:00+02:00"},
		{"fall: split window, second part", "Sun 01:00-02:30 Europe/Berlin", "2026-10-25T02:15:00+01:00",
			"2026-10-25T02:00:00+01:00", "2026-10-25T02:30:00+01:00"},
		{"ny spring: zero-length Sunday skipped", "Sun 02:00-03:00 America/New_York", "2026-03-07T12:00:00-05:00",
			"2026-03-15T02:00:00-04:00", "2026-03-15T03:00:00-04:00"},
		{"ny fall: repeated hour", "Sun 01:00-02:00 America/New_York", "2026-11-01T00:00:00-04:00",
			"2026-11-01T01:00:00-04:00", "2026-11-01T02:00:00-05:00"},
		{"tokyo: inside after midnight", "Mon-Fri 22:00-02:00 Asia/Tokyo", "2026-11-28T01:00:00+09:00",
			"2026-11-27T22:00:00+09:00", "2026-11-28T02:00:00+09:00"},
		{"tokyo: weekend skipped", "Mon-Fri 22:00-02:00 Asia/Tokyo", "2026-11-28T03:00:00+09:00",
			"2026-11-30T22:00:00+09:00", "2026-12-01T02:00:00+09:00"},
		{"weekly, a week ahead", "Wed 10:00-11:00 UTC", "2026-11-25T11:00:00Z",
			"2026-12-02T10:00:00Z", "2026-12-02T11:00:00Z"},
		// Samoa skipped Friday 2011-12-30 when it moved across the date line.
		{"apia: skipped day", "Fri 10:00-12:00 Pacific/Apia", "2011-12-28T00:00:00-10:00",
			"2012-01-06T10:00:00+14:00", "2012-01-06T12:00:00+14:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := mustWindow(t, tt.window)
			start, end := w.Next(mustTime(t, tt.at))
			if got := start.Format(time.RFC3339); got != tt.start {
				t.Errorf("start = %s, want %s", got, tt.start)
			}
			if got := end.Format(time.RFC3339); got != tt.end {
				t.Errorf("end = %s, want %s", got, tt.end)
			}
		})
	}
	t.Run("always", func(t *testing.T) {
		at := mustTime(t, "2026-11-27T03:00:00Z")
		start, end := Window{}.Next(at)
		if !start.Equal(at) || !end.IsZero() {
			t.Fatalf("Next = %v, %v; want %v and the zero Time", start, end, at)
		}
	})
}

// TestNextProperty checks Next against Contains by brute force, minute by
// minute, for random windows in zones with unusual clock changes, at random
// times clustered around their transitions.
func TestNextProperty(t *testing.T) {
	zones := []string{
		"Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC",
		"Australia/Lord_Howe", // 30-minute DST shift
		"America/Havana",      // transitions at midnight
		"America/Santiago",    // transitions at midnight, southern hemisphere
		"Pacific/Apia",        // skipped a whole day in 2011
		"Africa/Casablanca",   // DST suspended for Ramadan
		"America/St_Johns",    // half-hour offset
		"Asia/Kathmandu",      // quarter-hour offset
		"Antarctica/Troll",    // two-hour DST shift
		"America/Argentina/Salta",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	lo := mustTime(t, "2010-01-01T00:00:00Z").Unix()
	hi := mustTime(t, "2030-01-01T00:00:00Z").Unix()
	cases := 400
	if testing.Short() {
		cases = 60
	}
	for i := range cases {
		zone := zones[rng.IntN(len(zones))]
		days := uint8(1 + rng.IntN(127))
		// Favour times near the usual transition hours.
		clock := func() int {
			if rng.IntN(2) == 0 {
				return rng.IntN(6)*60 + 30*rng.IntN(2)
			}
			return rng.IntN(24 * 60)
		}
		start, end := clock(), clock()
		if start == end {
			end = (end + 1) % (24 * 60)
		}
		text := strings.TrimSuffix(Window{days: days, start: start, end: end, loc: time.UTC}.String(), "UTC") + zone
		w := mustWindow(t, text)

		at := time.Unix(lo+rng.Int64N(hi-lo), rng.Int64N(1e9)).UTC()
		if rng.IntN(3) > 0 {
			// Jump next to a zone transition.
			if _, next := at.In(w.loc).ZoneBounds(); !next.IsZero() {
				at = next.Add(time.Duration(rng.Int64N(int64(96*time.Hour))) - 72*time.Hour)
			}
		}
		checkNext(t, i, w, at)
	}
}

// checkNext verifies Next(at) against Contains.
func checkNext(t *testing.T, i int, w Window, at time.Time) {
	t.Helper()
	start, end := w.Next(at)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("case %d: %q.Next(%s) = %s, %s: "+format,
			append([]any{i, w, at.Format(time.RFC3339Nano), start.Format(time.RFC3339), end.Format(time.RFC3339)}, args...)...)
	}
	if start.IsZero() || end.IsZero() || !start.Before(end) {
		fail("not an interval")
	}
	if start.Location() != w.loc || end.Location() != w.loc {
		fail("not in the window's zone")
	}
	if w.Contains(at) {
		if at.Before(start) || !at.Before(end) {
			fail("Contains(at) but at is outside [start, end)")
		}
	} else if !at.Before(start) {
		fail("!Contains(at) but start <= at")
	}
	if !w.Contains(start) || w.Contains(start.Add(-time.Nanosecond)) {
		fail("start is not where the window opens")
	}
	if !w.Contains(end.Add(-time.Nanosecond)) || w.Contains(end) {
		fail("end is not where the window closes")
	}
	if end.Sub(start) > 9*24*time.Hour || start.Sub(at) > 15*24*time.Hour {
		fail("implausibly far")
	}
	// Every offset in these zones since 2010 is a multiple of 15 minutes,
	// so the window can only change at whole UTC minutes.
	for m := at.Truncate(time.Minute).Add(time.Minute); m.Before(end); m = m.Add(time.Minute) {
		if got, want := w.Contains(m), !m.Before(start); got != want {
			fail("Contains(%s) = %v", m.In(w.loc).Format(time.RFC3339), got)
		}
	}
	if s2, e2 := w.Next(start); !s2.Equal(start) || !e2.Equal(end) {
		fail("Next(start) = %s, %s", s2, e2)
	}
	if s2, _ := w.Next(end); !s2.After(end) {
		fail("Next(end) starts at %s", s2)
	}
}
