// Package train drives the release trains of the kernel lines: the
// departure schedule (weekday, time and zone, every edge cycle), freeze
// windows, and Decide, the pure function the leader runs on every tick to
// find the train steps the state calls for. The leader proposes them
// through Raft (fsm.TrainStep), where each is checked again against the
// command's time; the fleet simulator can run the same function on its
// compressed time.
package train

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// Departure is a weekly departure time: a weekday and a wall-clock time
// in a zone.
type Departure struct {
	Weekday      time.Weekday
	Hour, Minute int
	Location     *time.Location
}

// String renders d as ParseDeparture reads it ("Tue 09:00 UTC").
func (d Departure) String() string {
	return fmt.Sprintf("%s %02d:%02d %s", d.Weekday.String()[:3], d.Hour, d.Minute, d.Location)
}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// ParseDeparture reads "WEEKDAY HH:MM ZONE": a weekday (Mon … Sun or the
// full English name, any case), a 24-hour time and an IANA zone name
// (time.LoadLocation; "UTC" or e.g. "Europe/Berlin").
func ParseDeparture(s string) (Departure, error) {
	var d Departure
	f := strings.Fields(s)
	if len(f) != 3 {
		return d, fmt.Errorf("departure %q: want \"WEEKDAY HH:MM ZONE\", e.g. \"Tue 09:00 UTC\"", s)
	}
	day := strings.ToLower(f[0])
	wd, ok := weekdays[day]
	if !ok && len(day) > 3 {
		if w, ok2 := weekdays[day[:3]]; ok2 && strings.EqualFold(w.String(), day) {
			wd, ok = w, true
		}
	}
	if !ok {
		return d, fmt.Errorf("departure %q: unknown weekday %q (want Mon … Sun)", s, f[0])
	}
	hh, mm, found := strings.Cut(f[1], ":")
	h, errH := strconv.Atoi(hh)
	m, errM := strconv.Atoi(mm)
	if !found || len(hh) != 2 || len(mm) != 2 || errH != nil || errM != nil || h < 0 || h > 23 || m < 0 || m > 59 {
		return d, fmt.Errorf("departure %q: time %q: want HH:MM, 00:00 to 23:59", s, f[1])
	}
	if strings.EqualFold(f[2], "local") {
		return d, fmt.Errorf("departure %q: name the zone (e.g. UTC, Europe/Berlin), not Local: every coordinator must read the same time", s)
	}
	loc, err := time.LoadLocation(f[2])
	if err != nil {
		return d, fmt.Errorf("departure %q: zone %q: %w", s, f[2], err)
	}
	return Departure{Weekday: wd, Hour: h, Minute: m, Location: loc}, nil
}

// at returns the departure time on the local date y-m-day (time.Date
// normalises a day beyond the month; a wall time that a DST change skips
// or repeats is resolved as time.Date resolves it).
func (d Departure) at(y int, m time.Month, day int) time.Time {
	return time.Date(y, m, day, d.Hour, d.Minute, 0, 0, d.Location)
}

// First returns the first departure strictly after t.
func (d Departure) First(t time.Time) time.Time {
	l := t.In(d.Location)
	ahead := (int(d.Weekday) - int(l.Weekday()) + 7) % 7
	c := d.at(l.Year(), l.Month(), l.Day()+ahead)
	if !c.After(t) {
		c = d.at(l.Year(), l.Month(), l.Day()+ahead+7)
	}
	return c.UTC()
}

// Next returns the first departure of the cadence of due (the same
// weekday and local time every cycle, a whole number of weeks) strictly
// after now: due's next one, or a later one when the coordinator missed
// some (one departure makes up for them all).
func (d Departure) Next(due time.Time, cycle time.Duration, now time.Time) time.Time {
	weeks := int(cycle / (7 * 24 * time.Hour))
	if weeks < 1 {
		weeks = 1
	}
	l := due.In(d.Location)
	for k := 1; ; k++ {
		c := d.at(l.Year(), l.Month(), l.Day()+7*weeks*k)
		if c.After(now) {
			return c.UTC()
		}
	}
}

// ParseFreeze reads a freeze window "YYYY-MM-DD..YYYY-MM-DD" (both dates
// inclusive, in loc): from the first day's 00:00 to the day after the
// last one's 00:00.
func ParseFreeze(spec string, loc *time.Location) (fsm.Freeze, error) {
	a, b, ok := strings.Cut(spec, "..")
	if !ok {
		return fsm.Freeze{}, fmt.Errorf("freeze %q: want FIRST..LAST, e.g. 2026-12-20..2027-01-04", spec)
	}
	from, err := time.ParseInLocation(time.DateOnly, a, loc)
	if err != nil {
		return fsm.Freeze{}, fmt.Errorf("freeze %q: first day: %w", spec, err)
	}
	last, err := time.ParseInLocation(time.DateOnly, b, loc)
	if err != nil {
		return fsm.Freeze{}, fmt.Errorf("freeze %q: last day: %w", spec, err)
	}
	if last.Before(from) {
		return fsm.Freeze{}, fmt.Errorf("freeze %q: its last day is before its first", spec)
	}
	if last.Sub(from) > 366*24*time.Hour {
		return fsm.Freeze{}, fmt.Errorf("freeze %q: longer than a year", spec)
	}
	to := time.Date(last.Year(), last.Month(), last.Day()+1, 0, 0, 0, 0, loc)
	return fsm.Freeze{Spec: spec, From: from.UTC(), To: to.UTC()}, nil
}

// Settings are an operator's train settings, as krollctl train set sends
// them.
type Settings struct {
	Line        string
	Staging     []string
	StagingSoak time.Duration
	ControlSoak time.Duration
	EdgeCycle   time.Duration
	Departure   string
	Freezes     []string
}

// SetTrain validates st and returns the command that sets the train, its
// departure and freezes resolved in the departure's zone and its first
// departure after now. It checks what needs no state (the state's checks
// are fsm.State.ValidateSetTrain's); every problem is reported at once.
func SetTrain(st Settings, now time.Time) (fsm.SetTrain, error) {
	var errs []error
	if !wire.ValidLine(st.Line) {
		errs = append(errs, fmt.Errorf("invalid line %q: want MAJOR.MINOR, e.g. 6.12", st.Line))
	}
	d, err := ParseDeparture(st.Departure)
	if err != nil {
		errs = append(errs, err)
	}
	p := fsm.SetTrain{Line: st.Line, Staging: st.Staging, StagingSoak: st.StagingSoak, ControlSoak: st.ControlSoak, EdgeCycle: st.EdgeCycle}
	if err == nil {
		p.Departure = d.String()
		p.NextDeparture = d.First(now)
		for _, spec := range st.Freezes {
			f, err := ParseFreeze(spec, d.Location)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			p.Freezes = append(p.Freezes, f)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fsm.SetTrain{}, fmt.Errorf("train %s: %w", st.Line, err)
	}
	return p, nil
}
