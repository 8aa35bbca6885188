// Package schedule decides which host of a datacenter may take a reboot slot
// and when (DESIGN §5): slot limits, capacity floors, weekly maintenance
// windows, pause and failure budgets.
//
// Decide is a pure function of a datacenter's Policy, its hosts, and the
// Request (whose time is stamped by the Raft leader). It reads no clock, uses
// no randomness, and its result does not depend on the order of the hosts,
// so every replica of the coordinator's state machine reaches the same
// decision when it applies the same command.
//
// Window is a weekly local maintenance window such as
// "Mon-Sun 02:00-05:00 Europe/Berlin", evaluated on the wall clock of its
// own time zone; see ParseWindow and Window.Contains for the grammar and the
// daylight-saving rules.
//
// Time zone data: the package embeds the IANA database (time/tzdata) so that
// static binaries on hosts without /usr/share/zoneinfo can still load zones.
// time.LoadLocation prefers $ZONEINFO and the system database over the
// embedded copy, so coordinator replicas should run with the same zone data
// (e.g. the same $ZONEINFO, or none of them with a system database) for their
// window evaluations to agree across a rule change.
package schedule

import _ "time/tzdata" // zone data for static binaries without /usr/share/zoneinfo
