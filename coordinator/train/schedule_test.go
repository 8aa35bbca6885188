package train

import (
	"strings"
	"testing"
	"time"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestDepartureSchedule: the first departure after a time and the cadence
// after a departure, in UTC and across daylight-saving changes (the local
// time stays put, the UTC instant moves).
func TestDepartureSchedule(t *testing.T) {
	utc := func(y int, m time.Month, d, h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, time.UTC) }
	for _, tc := range []struct {
		name, dep string
		after     time.Time
		cycle     time.Duration
		first     time.Time
		next      time.Time // the cadence's departure after first, seen at first
	}{
		{"utc same day before", "Tue 09:00 UTC", utc(2026, 11, 3, 8, 59), 4 * 7 * 24 * time.Hour, utc(2026, 11, 3, 9, 0), utc(2026, 12, 1, 9, 0)},
		{"utc at the minute is the next week", "tue 09:00 UTC", utc(2026, 11, 3, 9, 0), 7 * 24 * time.Hour, utc(2026, 11, 10, 9, 0), utc(2026, 11, 17, 9, 0)},
		{"full weekday name", "Sunday 23:30 UTC", utc(2026, 11, 3, 0, 0), 7 * 24 * time.Hour, utc(2026, 11, 8, 23, 30), utc(2026, 11, 15, 23, 30)},
		{"berlin into summer time", "Tue 09:00 Europe/Berlin", utc(2026, 3, 20, 0, 0), 7 * 24 * time.Hour, utc(2026, 3, 24, 8, 0), utc(2026, 3, 31, 7, 0)},
		{"berlin out of summer time", "Tue 09:00 Europe/Berlin", utc(2026, 10, 20, 12, 0), 7 * 24 * time.Hour, utc(2026, 10, 27, 8, 0), utc(2026, 11, 3, 8, 0)},
		{"new york four weeks over DST", "Mon 02:30 America/New_York", utc(2026, 2, 20, 0, 0), 4 * 7 * 24 * time.Hour, utc(2026, 2, 23, 7, 30), utc(2026, 3, 23, 6, 30)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ParseDeparture(tc.dep)
			if err != nil {
				t.Fatal(err)
			}
			first := d.First(tc.after)
			if !first.Equal(tc.first) {
				t.Fatalf("first %s, want %s", first, tc.first)
			}
			if next := d.Next(first, tc.cycle, first); !next.Equal(tc.next) {
				t.Fatalf("next %s, want %s", next, tc.next)
			}
			// A coordinator down for three cycles departs once, then
			// keeps the cadence.
			late := tc.next.Add(2*tc.cycle + time.Hour)
			if n := d.Next(first, tc.cycle, late); !n.After(late) || n.Sub(late) > tc.cycle+2*time.Hour || n.In(d.Location).Weekday() != d.Weekday {
				t.Fatalf("next after %s: %s", late, n)
			}
		})
	}
}

func TestParseDepartureInvalid(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "want \"WEEKDAY HH:MM ZONE\""},
		{"Tue 09:00", "want \"WEEKDAY HH:MM ZONE\""},
		{"Tus 09:00 UTC", "unknown weekday"},
		{"Tuesdayy 09:00 UTC", "unknown weekday"},
		{"Tue 9:00 UTC", "want HH:MM"},
		{"Tue 24:00 UTC", "want HH:MM"},
		{"Tue 09:60 UTC", "want HH:MM"},
		{"Tue 09:00 Mars/Olympus", "zone"},
		{"Tue 09:00 Local", "name the zone"},
	} {
		if _, err := ParseDeparture(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseDeparture(%q): %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestParseFreeze(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	f, err := ParseFreeze("2026-12-20..2027-01-04", berlin)
	if err != nil {
		t.Fatal(err)
	}
	if !f.From.Equal(time.Date(2026, 12, 19, 23, 0, 0, 0, time.UTC)) || !f.To.Equal(time.Date(2027, 1, 4, 23, 0, 0, 0, time.UTC)) {
		t.Fatalf("freeze %+v", f)
	}
	for _, tc := range []struct{ in, want string }{
		{"2026-12-20", "want FIRST..LAST"},
		{"2026-12-20..2026-12-19", "before its first"},
		{"2026-13-01..2026-12-19", "first day"},
		{"2026-12-01..tomorrow", "last day"},
		{"2026-01-01..2027-06-01", "longer than a year"},
	} {
		if _, err := ParseFreeze(tc.in, time.UTC); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseFreeze(%q): %v, want %q", tc.in, err, tc.want)
		}
	}
}

// TestSetTrainValidation: every invalid setting is refused, by SetTrain
// or by the state machine, with one error naming them all.
func TestSetTrainValidation(t *testing.T) {
	good := Settings{Line: line, Staging: []string{"stg"}, StagingSoak: 72 * time.Hour, ControlSoak: 24 * time.Hour,
		EdgeCycle: 672 * time.Hour, Departure: "Tue 09:00 UTC", Freezes: []string{"2026-12-20..2027-01-04"}}
	for _, tc := range []struct {
		name string
		edit func(*Settings)
		want []string
	}{
		{"valid", func(*Settings) {}, nil},
		{"unknown staging dc", func(s *Settings) { s.Staging = []string{"nope"} }, []string{`"nope" does not exist`}},
		{"edge dc as staging", func(s *Settings) { s.Staging = []string{"fra"} }, []string{`"fra" is of tier edge`}},
		{"no staging", func(s *Settings) { s.Staging = nil }, []string{"no staging datacenter"}},
		{"soaks", func(s *Settings) { s.StagingSoak, s.ControlSoak = time.Second, 100*24*time.Hour }, []string{"staging soak 1s", "control soak 2400h"}},
		{"cycle not whole weeks", func(s *Settings) { s.EdgeCycle = 100 * time.Hour }, []string{"whole weeks"}},
		{"overlapping freezes", func(s *Settings) { s.Freezes = []string{"2026-12-20..2027-01-04", "2027-01-01..2027-01-10"} }, []string{"not overlapping"}},
		{"bad line", func(s *Settings) { s.Line = "-x" }, []string{`invalid line "-x"`}},
		{"line without a minor", func(s *Settings) { s.Line = "612" }, []string{`invalid line "612"`}},
		{"a release, not a line", func(s *Settings) { s.Line = "6.12.0" }, []string{`invalid line "6.12.0"`}},
		{"line with a leading zero", func(s *Settings) { s.Line = "6.012" }, []string{`invalid line "6.012"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fl := newFleet(t)
			st := good
			tc.edit(&st)
			p, err := SetTrain(st, t0)
			if err == nil {
				if r := fl.exec(p); r.Err != nil {
					err = errString(r.Err.Value)
				}
			}
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q, want %q", err, w)
				}
			}
		})
	}
}

type errString string

func (e errString) Error() string { return string(e) }
