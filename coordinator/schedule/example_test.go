package schedule_test

import (
	"fmt"
	"time"

	"github.com/kroll-dev/kroll/coordinator/schedule"
)

func ExampleDecide() {
	w, err := schedule.ParseWindow("Mon-Sun 02:00-05:00 Europe/Berlin")
	if err != nil {
		panic(err)
	}
	p := schedule.Policy{SlotLimit: 3, MinHealthyPct: 90, Window: w}
	hosts := []schedule.HostState{
		{ID: "a", Serving: true}, {ID: "b", Serving: true}, {ID: "c", Serving: true}, {ID: "d", Serving: true},
		{ID: "e", Serving: true}, {ID: "f", Serving: true}, {ID: "g", Serving: true}, {ID: "h", Serving: true},
		{ID: "i", Serving: true}, {ID: "j", Holding: true},
	}
	noon := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	night := time.Date(2026, 11, 27, 2, 30, 0, 0, time.UTC)

	fmt.Println(schedule.Decide(p, true, hosts, schedule.Request{Host: "a", Now: noon}))
	fmt.Println(schedule.Decide(p, true, hosts, schedule.Request{Host: "a", Now: night}))
	fmt.Println(schedule.Decide(p, true, hosts, schedule.Request{Host: "j", Now: noon}))
	// Output:
	// {false outside_window outside window Mon-Sun 02:00-05:00 Europe/Berlin; next opens 2026-11-27T02:00:00+01:00}
	// {false capacity_floor serving 9 of 10 hosts; granting would leave 8 < floor 9 (90%)}
	// {true already_held host "j" already holds a slot; 1 of 3 slots held}
}

func ExampleWindow_Next() {
	w, err := schedule.ParseWindow("Mon-Sun 02:00-03:00 Europe/Berlin")
	if err != nil {
		panic(err)
	}
	// 2026-03-29 springs forward from 02:00 to 03:00: no window that night.
	start, end := w.Next(time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC))
	fmt.Println(start, "→", end)
	// 2026-10-25 falls back from 03:00 to 02:00: the hour is read twice.
	start, end = w.Next(time.Date(2026, 10, 24, 12, 0, 0, 0, time.UTC))
	fmt.Println(start, "→", end)
	// Output:
	// 2026-03-30 02:00:00 +0200 CEST → 2026-03-30 03:00:00 +0200 CEST
	// 2026-10-25 02:00:00 +0200 CEST → 2026-10-25 03:00:00 +0100 CET
}
