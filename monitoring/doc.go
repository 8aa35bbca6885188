// Package monitoring holds kroll's monitoring kit: Prometheus alert rules
// (kroll.rules.yml) with their promtool unit tests (kroll.rules.test.yml)
// and a Grafana dashboard (kroll-dashboard.json). Its tests check the kit
// with promtool and against the metrics the code registers; see
// docs/operations.md "Monitoring" for how to load it.
package monitoring
