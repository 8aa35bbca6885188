package schedule

import (
	"fmt"
	"strings"
	"time"
)

// Always is the text form of the window without restriction, which is also
// the zero Window.
const Always = "always"

// Window is a weekly local maintenance window, e.g.
// "Mon-Sun 02:00-05:00 Europe/Berlin" or "Sat,Sun 01:00-04:30 America/New_York".
// A window whose end is earlier than its start crosses midnight: the window
// that starts on a listed day runs into the next day ("Mon-Fri 22:00-02:00
// Asia/Tokyo" is open from Friday 22:00 until Saturday 02:00, but not from
// Sunday 22:00).
//
// The zero Window is "always": it imposes no restriction. Windows are
// created with ParseWindow or UnmarshalText; compare them with Equal.
type Window struct {
	// days has bit i set when ISO day i (0 = Monday … 6 = Sunday) is listed;
	// 0 exactly for the always window.
	days uint8
	// start and end are minutes after local midnight, 0..1439, start != end.
	start, end int
	// loc is the window's zone, nil exactly for the always window.
	loc *time.Location
}

// WindowError reports why ParseWindow rejected its input.
type WindowError struct {
	// Input is the text that was parsed.
	Input string
	// Err describes the problem; it wraps the cause, if any (e.g. the error
	// of time.LoadLocation for an unknown zone).
	Err error
}

// Error returns `invalid window "INPUT": PROBLEM`.
func (e *WindowError) Error() string {
	return fmt.Sprintf("invalid window %q: %v", e.Input, e.Err)
}

// Unwrap returns the problem, so that errors.Is and errors.As see its cause.
func (e *WindowError) Unwrap() error { return e.Err }

// windowSyntax is the grammar quoted in error messages.
const windowSyntax = `want "DAYS HH:MM-HH:MM ZONE" (e.g. "Mon-Fri 22:00-02:00 Asia/Tokyo") or "always"`

// ParseWindow parses a window in the form "DAYS HH:MM-HH:MM ZONE" or the
// word "always", strictly: the three fields are separated by single spaces
// and nothing else may surround them.
//
//   - DAYS is a comma-separated list of days ("Mon", "Tue", "Wed", "Thu",
//     "Fri", "Sat", "Sun", exactly so capitalised) and day ranges ("Mon-Fri";
//     a range may wrap around the week: "Fri-Mon" is Fri,Sat,Sun,Mon). No day
//     may be listed twice.
//   - HH:MM-HH:MM are 24-hour local wall-clock times with two digits each
//     (00:00 … 23:59). The start is inclusive, the end exclusive, and they
//     must differ. An end earlier than the start crosses midnight.
//   - ZONE is an IANA time zone name as accepted by time.LoadLocation, e.g.
//     "Europe/Berlin" or "UTC". "Local", the empty name, and the "posix/"
//     and "right/" trees of the system database are rejected: a window must
//     mean the same on every coordinator.
//
// Errors are *WindowError values naming the offending part.
func ParseWindow(s string) (Window, error) {
	w, err := parseWindow(s)
	if err != nil {
		return Window{}, &WindowError{Input: s, Err: err}
	}
	return w, nil
}

func parseWindow(s string) (Window, error) {
	if s == Always {
		return Window{}, nil
	}
	if s == "" {
		return Window{}, fmt.Errorf("empty; %s", windowSyntax)
	}
	fields := strings.Split(s, " ")
	for _, f := range fields {
		if f == "" {
			return Window{}, fmt.Errorf("empty field: fields are separated by single spaces; %s", windowSyntax)
		}
	}
	switch len(fields) {
	case 3:
	case 2:
		if strings.Contains(fields[1], ":") {
			return Window{}, fmt.Errorf("missing time zone after %q (e.g. Europe/Berlin); %s", fields[1], windowSyntax)
		}
		return Window{}, fmt.Errorf("2 fields; %s", windowSyntax)
	default:
		return Window{}, fmt.Errorf("%d fields; %s", len(fields), windowSyntax)
	}
	days, err := parseDays(fields[0])
	if err != nil {
		return Window{}, fmt.Errorf("days %q: %w", fields[0], err)
	}
	start, end, err := parseTimes(fields[1])
	if err != nil {
		return Window{}, fmt.Errorf("times %q: %w", fields[1], err)
	}
	loc, err := loadZone(fields[2])
	if err != nil {
		return Window{}, fmt.Errorf("zone %q: %w", fields[2], err)
	}
	return Window{days: days, start: start, end: end, loc: loc}, nil
}

// dayName returns the three-letter name of ISO day i (0 = Monday).
func dayName(i int) string {
	return time.Weekday((i + 1) % 7).String()[:3]
}

// isoDay returns the ISO day index (0 = Monday) of d.
func isoDay(d time.Weekday) int {
	return (int(d) + 6) % 7
}

// parseDayName returns the ISO day index of a three-letter day name.
func parseDayName(s string) (int, error) {
	for i := range 7 {
		if s == dayName(i) {
			return i, nil
		}
	}
	return 0, fmt.Errorf("unknown day %q (want Mon, Tue, Wed, Thu, Fri, Sat or Sun)", s)
}

// parseDays parses a comma list of days and day ranges into a bit set.
func parseDays(s string) (uint8, error) {
	var set uint8
	for item := range strings.SplitSeq(s, ",") {
		if item == "" {
			return 0, fmt.Errorf("empty item in day list")
		}
		var first, last int
		switch parts := strings.Split(item, "-"); len(parts) {
		case 1:
			d, err := parseDayName(item)
			if err != nil {
				return 0, err
			}
			first, last = d, d
		case 2:
			var err error
			if first, err = parseDayName(parts[0]); err != nil {
				return 0, fmt.Errorf("range %q: %w", item, err)
			}
			if last, err = parseDayName(parts[1]); err != nil {
				return 0, fmt.Errorf("range %q: %w", item, err)
			}
			if first == last {
				return 0, fmt.Errorf("range %q starts and ends on the same day; write %q", item, parts[0])
			}
		default:
			return 0, fmt.Errorf("bad range %q: want DAY-DAY", item)
		}
		for d := first; ; d = (d + 1) % 7 {
			if set&(1<<d) != 0 {
				return 0, fmt.Errorf("%s listed more than once", dayName(d))
			}
			set |= 1 << d
			if d == last {
				break
			}
		}
	}
	return set, nil
}

// parseTimes parses "HH:MM-HH:MM" into minutes after midnight.
func parseTimes(s string) (start, end int, err error) {
	parts := strings.Split(s, "-")
	if len(parts) != 2 {
		return 0, 0, fmt.Errorf("want HH:MM-HH:MM")
	}
	if start, err = parseClock(parts[0]); err != nil {
		return 0, 0, fmt.Errorf("start: %w", err)
	}
	if end, err = parseClock(parts[1]); err != nil {
		return 0, 0, fmt.Errorf("end: %w", err)
	}
	if start == end {
		return 0, 0, fmt.Errorf("start and end are both %s; a window must not be empty (and cannot last a full day)", parts[0])
	}
	return start, end, nil
}

// parseClock parses a two-digit "HH:MM" 24-hour time into minutes after
// midnight.
func parseClock(s string) (int, error) {
	if len(s) != 5 || s[2] != ':' || !isDigit(s[0]) || !isDigit(s[1]) || !isDigit(s[3]) || !isDigit(s[4]) {
		return 0, fmt.Errorf("%q: want HH:MM (24-hour, two digits each)", s)
	}
	h := int(s[0]-'0')*10 + int(s[1]-'0')
	m := int(s[3]-'0')*10 + int(s[4]-'0')
	if h > 23 {
		return 0, fmt.Errorf("%q: hour %d out of range 00..23 (midnight is 00:00)", s, h)
	}
	if m > 59 {
		return 0, fmt.Errorf("%q: minute %d out of range 00..59", s, m)
	}
	return h*60 + m, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// loadZone loads an IANA zone by name, refusing names that could mean
// different things on different machines.
func loadZone(name string) (*time.Location, error) {
	switch {
	case name == "Local":
		return nil, fmt.Errorf("the machine's local zone is not allowed; name an IANA zone such as Europe/Berlin")
	case strings.HasPrefix(name, "posix/"), strings.HasPrefix(name, "right/"):
		return nil, fmt.Errorf("not a canonical IANA zone name; drop the %q prefix", name[:strings.IndexByte(name, '/')+1])
	}
	for comp := range strings.SplitSeq(name, "/") {
		if comp == "" {
			return nil, fmt.Errorf("not an IANA zone name: empty path component")
		}
		if !isLetter(comp[0]) {
			return nil, fmt.Errorf("not an IANA zone name: component %q does not start with a letter", comp)
		}
		for i := 0; i < len(comp); i++ {
			if c := comp[i]; !isLetter(c) && !isDigit(c) && c != '_' && c != '-' && c != '+' {
				return nil, fmt.Errorf("not an IANA zone name: character %q", c)
			}
		}
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone: %w", err)
	}
	return loc, nil
}

func isLetter(c byte) bool { return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' }

// String returns the canonical form of w, which ParseWindow parses back to
// an equal Window: "always" for the zero Window, otherwise days in week
// order from Monday with runs of three or more days written as ranges
// ("Mon-Fri", "Sat,Sun", "Mon,Wed-Fri,Sun"), then the times and the zone,
// e.g. "Mon-Sun 02:00-05:00 Europe/Berlin".
func (w Window) String() string {
	if w.IsAlways() {
		return Always
	}
	var b strings.Builder
	for i := 0; i < 7; {
		if w.days&(1<<i) == 0 {
			i++
			continue
		}
		j := i
		for j+1 < 7 && w.days&(1<<(j+1)) != 0 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		switch j - i {
		case 0:
			b.WriteString(dayName(i))
		case 1:
			b.WriteString(dayName(i) + "," + dayName(j))
		default:
			b.WriteString(dayName(i) + "-" + dayName(j))
		}
		i = j + 1
	}
	fmt.Fprintf(&b, " %02d:%02d-%02d:%02d %s", w.start/60, w.start%60, w.end/60, w.end%60, w.loc)
	return b.String()
}

// IsAlways reports whether w is the window without restriction (the zero
// Window, "always").
func (w Window) IsAlways() bool { return w.loc == nil }

// Equal reports whether w and o are the same window: the same days, times
// and zone name.
func (w Window) Equal(o Window) bool {
	if w.IsAlways() || o.IsAlways() {
		return w.IsAlways() == o.IsAlways()
	}
	return w.days == o.days && w.start == o.start && w.end == o.end && w.loc.String() == o.loc.String()
}

// MarshalText returns the canonical form of w (see String).
func (w Window) MarshalText() ([]byte, error) {
	return []byte(w.String()), nil
}

// UnmarshalText parses text with ParseWindow into w. On error w is left
// unchanged.
func (w *Window) UnmarshalText(text []byte) error {
	v, err := ParseWindow(string(text))
	if err != nil {
		return err
	}
	*w = v
	return nil
}

// listed reports whether weekday d is one of w's days.
func (w Window) listed(d time.Weekday) bool {
	return w.days&(1<<isoDay(d)) != 0
}

// Contains reports whether the instant t lies inside w. It is evaluated on
// the wall clock of w's zone, whatever t's own location: the local weekday
// and time of day of t decide, with the start inclusive and the end
// exclusive. The always window contains every instant.
//
// Daylight-saving changes follow from evaluating the wall clock:
//
//   - on a spring-forward day the skipped wall-clock times never occur, so a
//     window lying entirely in the gap (02:00-03:00 in Europe/Berlin on
//     2026-03-29) has zero length that day, and a window starting in the gap
//     opens at the jump (02:30-05:00 opens at 03:00 CEST that day);
//   - on a fall-back day the repeated wall-clock times occur twice and count
//     each time they are read: a 02:00-02:30 window in Europe/Berlin on
//     2026-10-25 contains both 02:15 CEST and 02:15 CET, and a 01:00-02:30
//     window is open 01:00-02:30 CEST, closed 02:30-03:00 CEST and open again
//     02:00-02:30 CET.
func (w Window) Contains(t time.Time) bool {
	if w.IsAlways() {
		return true
	}
	lt := t.In(w.loc)
	sod := lt.Hour()*3600 + lt.Minute()*60 + lt.Second()
	start, end := w.start*60, w.end*60
	d := lt.Weekday()
	if start < end {
		return w.listed(d) && start <= sod && sod < end
	}
	// Crossing midnight: the part after start on a listed day, or the part
	// before end on the day after a listed day.
	return (w.listed(d) && sod >= start) || (w.listed((d+6)%7) && sod < end)
}

// nextHorizon bounds the search of Next; every parsed window opens at least
// once a week, so it is only reached for corrupt Windows.
const nextHorizon = 400 * 24 * time.Hour

// Next returns the occurrence of w that contains t if Contains(t), or else
// the first one after t, for status displays and "next opens" messages. An
// occurrence is a maximal stretch of instants in which Contains is true:
// start is the instant it begins (start <= t when Contains(t), start > t
// otherwise) and end the first instant after start at which Contains is
// false again. Both are returned in w's zone.
//
// Because occurrences follow Contains, daylight-saving changes show: a
// window with zero length on a spring-forward day is skipped; on a fall-back
// day a window that ends inside the repeated hour yields two occurrences (see
// Contains); and two occurrences that touch because a clock change removed
// the gap between them are reported as one.
//
// For the always window Next returns t and the zero Time (it never closes).
func (w Window) Next(t time.Time) (start, end time.Time) {
	if w.IsAlways() {
		return t, time.Time{}
	}
	t = t.In(w.loc)
	var ok bool
	if w.Contains(t) {
		start, ok = w.openedAt(t)
	} else {
		start, ok = w.opensAfter(t)
	}
	if !ok {
		return time.Time{}, time.Time{}
	}
	if end, ok = w.closesAfter(start); !ok {
		return time.Time{}, time.Time{}
	}
	return start.In(w.loc), end.In(w.loc)
}

// zoneAt returns the offset (seconds east of UTC) in effect at x and the
// bounds of the period in which it is in effect (zero Times for unbounded).
func (w Window) zoneAt(x time.Time) (offset int, from, until time.Time) {
	lx := x.In(w.loc)
	_, offset = lx.Zone()
	from, until = lx.ZoneBounds()
	return offset, from, until
}

// Within one zone period the wall clock is the instant shifted by a fixed
// offset. "Naive" times below are such wall-clock readings expressed as UTC
// times, in which w is a sorted sequence of disjoint, non-touching intervals.

// naive returns the wall-clock reading of instant x at offset off.
func naive(x time.Time, off int) time.Time {
	return x.UTC().Add(time.Duration(off) * time.Second)
}

// instant returns the instant whose wall-clock reading at offset off is nw.
func instant(nw time.Time, off int) time.Time {
	return nw.Add(-time.Duration(off) * time.Second)
}

// interval returns the first naive interval [a, b) of w with b > nw. One
// starts on each listed day; the search covers the day before nw (whose
// interval may cross midnight into nw's day) and the week after it. ok is
// false only for a corrupt Window without days.
func (w Window) interval(nw time.Time) (a, b time.Time, ok bool) {
	y, m, d := nw.Date()
	midnight := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	for k := -1; k <= 7; k++ {
		day := midnight.AddDate(0, 0, k)
		if !w.listed(day.Weekday()) {
			continue
		}
		a = day.Add(time.Duration(w.start) * time.Minute)
		b = day.Add(time.Duration(w.end) * time.Minute)
		if w.end < w.start {
			b = b.AddDate(0, 0, 1)
		}
		if b.After(nw) {
			return a, b, true
		}
	}
	return time.Time{}, time.Time{}, false
}

// openedAt returns the start of the occurrence containing x
// (Contains(x) must be true), walking back through zone periods.
func (w Window) openedAt(x time.Time) (time.Time, bool) {
	limit := x.Add(-nextHorizon)
	for x.After(limit) {
		off, from, _ := w.zoneAt(x)
		a, _, ok := w.interval(naive(x, off)) // contains naive(x, off)
		if !ok {
			break
		}
		s := instant(a, off)
		if from.IsZero() || s.After(from) {
			return s, true
		}
		// Open since the period began; was it open just before?
		before := from.Add(-time.Nanosecond)
		if !w.Contains(before) {
			return from, true
		}
		x = before
	}
	return time.Time{}, false
}

// opensAfter returns the first instant after x at which w opens
// (Contains(x) must be false), walking forward through zone periods.
func (w Window) opensAfter(x time.Time) (time.Time, bool) {
	limit := x.Add(nextHorizon)
	for x.Before(limit) {
		off, _, until := w.zoneAt(x)
		a, _, ok := w.interval(naive(x, off))
		if !ok {
			break
		}
		s := instant(a, off)
		if s.Before(x) {
			s = x // only at a period boundary where w is already open
		}
		if until.IsZero() || s.Before(until) {
			return s, true
		}
		x = until
	}
	return time.Time{}, false
}

// closesAfter returns the first instant after x at which w is closed
// (Contains(x) must be true), walking forward through zone periods.
func (w Window) closesAfter(x time.Time) (time.Time, bool) {
	limit := x.Add(nextHorizon)
	for x.Before(limit) {
		off, _, until := w.zoneAt(x)
		_, b, ok := w.interval(naive(x, off)) // contains naive(x, off)
		if !ok {
			break
		}
		e := instant(b, off)
		if until.IsZero() || e.Before(until) {
			return e, true
		}
		// Open until the period ends; is it still open after the change?
		if !w.Contains(until) {
			return until, true
		}
		x = until
	}
	return time.Time{}, false
}
