package schedule

import (
	"errors"
	"testing"
	"time"
)

// FuzzParseWindow checks that ParseWindow never panics, fails only with a
// *WindowError, and that every window it accepts round-trips through its
// canonical String form and can be evaluated.
func FuzzParseWindow(f *testing.F) {
	for _, s := range []string{
		"always", "", "Always",
		"Mon-Sun 02:00-05:00 Europe/Berlin",
		"Sat,Sun 01:00-04:30 America/New_York",
		"Mon-Fri 22:00-02:00 Asia/Tokyo",
		"Fri-Mon 23:30-00:15 Etc/GMT+5",
		"Mon,Wed-Fri,Sun 03:00-04:00 Australia/Lord_Howe",
		"Sun-Sat 12:00-11:59 UTC",
		"Mon 25:00-05:00 UTC", "Mon 02:00-02:00 UTC", "Mon-Sun 02:00-05:00",
		"Mon 02:00-05:00 Local", "Mon 02:00-05:00 Mars/Olympus_Mons", "Mon,Mon 02:00-05:00 UTC",
		"Mon 02:00-05:00 posix/Europe/Berlin", "Mon 02:00-05:00 Europe//Berlin",
	} {
		f.Add(s)
	}
	at := time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseWindow(s)
		if err != nil {
			var we *WindowError
			if !errors.As(err, &we) || we.Input != s {
				t.Fatalf("ParseWindow(%q) error %v is not a *WindowError for the input", s, err)
			}
			return
		}
		canon := w.String()
		w2, err := ParseWindow(canon)
		if err != nil {
			t.Fatalf("ParseWindow(%q) ok, but its String %q does not parse: %v", s, canon, err)
		}
		if !w2.Equal(w) || w2.String() != canon {
			t.Fatalf("round trip %q → %q → %q", s, canon, w2.String())
		}
		text, err := w.MarshalText()
		if err != nil || string(text) != canon {
			t.Fatalf("MarshalText = %q, %v; want %q", text, err, canon)
		}
		start, end := w.Next(at)
		if w.IsAlways() {
			return
		}
		if !start.Before(end) || w.Contains(at) != !at.Before(start) || !w.Contains(start) || w.Contains(end) {
			t.Fatalf("%q.Next(%s) = %s, %s disagrees with Contains", canon, at, start, end)
		}
	})
}
