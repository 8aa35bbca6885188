package monitoring

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v2"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/coordinator/store"
	"github.com/kroll-dev/kroll/pkg/wire"
)

const (
	rulesFile     = "kroll.rules.yml"
	rulesTestFile = "kroll.rules.test.yml"
	dashboardFile = "kroll-dashboard.json"
)

// need skips the test when a tool is missing, or fails it under CI=true
// (as packaging's tests do).
func need(t *testing.T, tools ...string) {
	t.Helper()
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("missing %s: run `make deps` (Debian package prometheus)", strings.Join(missing, ", "))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true)")
	}
	t.Skip(msg)
}

// promtool runs promtool with args and fails the test when it fails.
func promtool(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("promtool", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestRulesPromtool: the rules pass promtool's checks and their unit tests.
func TestRulesPromtool(t *testing.T) {
	need(t, "promtool")
	promtool(t, "check", "rules", rulesFile)
	out := promtool(t, "test", "rules", rulesTestFile)
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules:\n%s", out)
	}
}

type ruleGroups struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert  string            `yaml:"alert"`
			Record string            `yaml:"record"`
			Expr   string            `yaml:"expr"`
			Labels map[string]string `yaml:"labels"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type ruleTests struct {
	Tests []struct {
		AlertRuleTest []struct {
			Alertname string           `yaml:"alertname"`
			ExpAlerts []map[string]any `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

func readYAML(t *testing.T, name string, v any) {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// TestRulesCoverage: the alerts the kit promises exist, each with a
// severity, and the unit tests see every alert of the file fire and stay
// quiet at least once.
func TestRulesCoverage(t *testing.T) {
	var rules ruleGroups
	readYAML(t, rulesFile, &rules)
	var tests ruleTests
	readYAML(t, rulesTestFile, &tests)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	var alerts []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts = append(alerts, r.Alert)
			switch r.Labels["severity"] {
			case "critical", "warning", "info":
			default:
				t.Errorf("alert %s: severity %q, want critical, warning or info", r.Alert, r.Labels["severity"])
			}
			if !fires[r.Alert] {
				t.Errorf("alert %s: no unit test sees it fire", r.Alert)
			}
			if !quiet[r.Alert] {
				t.Errorf("alert %s: no unit test sees it stay quiet", r.Alert)
			}
		}
	}
	// The alerts issue 16 asks for.
	for _, want := range []string{
		"KrollQuorumWithoutLeader", "KrollRolloutPaused", "KrollRolloutFailed", "KrollDatacenterPaused",
		"KrollHostLost", "KrollHostFailed", "KrollPolicyCoverageIncomplete", "KrollAgentsNotReporting",
		"KrollAgentHeartbeatsFailing", "KrollClockStep",
	} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s", want)
		}
	}
}

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

// readDashboard decodes the dashboard and returns every panel (rows'
// nested ones included).
func readDashboard(t *testing.T) (dashboard, []panel) {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var all []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			all = append(all, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return d, all
}

// grafanaVar matches a dashboard variable in a query: $name or ${name}.
var grafanaVar = regexp.MustCompile(`\$\{?(\w+)\}?`)

// expand replaces Grafana's variables with values a PromQL parser
// accepts: intervals for the $__ ones, a label value for the others.
func expand(expr string) string {
	return grafanaVar.ReplaceAllStringFunc(expr, func(v string) string {
		if strings.HasPrefix(strings.Trim(v, "${}"), "__") {
			return "5m"
		}
		return "x"
	})
}

// TestDashboard: the dashboard is valid JSON with a uid and title; every
// panel has a unique id, a place on the 24-column grid and (except rows)
// the dashboard's Prometheus data source and at least one query; the
// variables the queries use are defined.
func TestDashboard(t *testing.T) {
	d, panels := readDashboard(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion == 0 || len(panels) == 0 {
		t.Fatalf("dashboard uid %q title %q schemaVersion %d, %d panels", d.UID, d.Title, d.SchemaVersion, len(panels))
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	ids := map[int]bool{}
	for _, p := range panels {
		if p.ID == 0 || ids[p.ID] {
			t.Errorf("panel %q: id %d missing or not unique", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.Title == "" || p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %d %q: title or grid position %+v invalid", p.ID, p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: data source %+v, want the dashboard's Prometheus variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q: no query", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" || tg.RefID == "" {
				t.Errorf("panel %q: empty query or refId", p.Title)
			}
			for _, m := range grafanaVar.FindAllStringSubmatch(tg.Expr, -1) {
				if name := m[1]; !strings.HasPrefix(name, "__") && !vars[name] {
					t.Errorf("panel %q: variable $%s is not defined", p.Title, name)
				}
			}
		}
	}
}

// TestDashboardQueriesParse: every query of the dashboard, its variables
// expanded, is valid PromQL: promtool checks them as recording rules.
func TestDashboardQueriesParse(t *testing.T) {
	need(t, "promtool")
	_, panels := readDashboard(t)
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for _, p := range panels {
		for _, tg := range p.Targets {
			rules = append(rules, rule{Record: fmt.Sprintf("dashboard:panel_%d_%s", p.ID, strings.ToLower(tg.RefID)), Expr: expand(tg.Expr)})
		}
	}
	doc := map[string]any{"groups": []map[string]any{{"name": "dashboard", "rules": rules}}}
	data, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard.rules.yml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out := promtool(t, "check", "rules", path)
	if want := fmt.Sprintf("SUCCESS: %d rules found", len(rules)); !strings.Contains(out, want) {
		t.Fatalf("promtool check rules: %s, want %q", out, want)
	}
}

// kitMetric matches the names of kroll's metrics in a query.
var kitMetric = regexp.MustCompile(`\bkroll_[A-Za-z0-9_]+\b`)

// TestKitMetricsExist: every kroll metric the rules and the dashboard
// query is one the code registers: a name in kroll's Go source, or one a
// real coordinator node exports for Raft (hashicorp/raft's and raft-wal's
// metrics, named at run time).
func TestKitMetricsExist(t *testing.T) {
	known := sourceMetricNames(t)
	for name := range raftMetricNames(t) {
		known[name] = true
	}
	exists := func(name string) bool {
		if known[name] {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && known[base] {
				return true
			}
		}
		return false
	}
	var queries []string
	var rules ruleGroups
	readYAML(t, rulesFile, &rules)
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			queries = append(queries, r.Expr)
		}
	}
	_, panels := readDashboard(t)
	for _, p := range panels {
		for _, tg := range p.Targets {
			queries = append(queries, tg.Expr)
		}
	}
	seen := 0
	for _, q := range queries {
		for _, name := range kitMetric.FindAllString(q, -1) {
			seen++
			if !exists(name) {
				t.Errorf("%s is not a metric kroll registers (query %q)", name, q)
			}
		}
	}
	if seen < 30 {
		t.Fatalf("only %d metric references found in the kit", seen)
	}
}

// metricName is a whole string literal that looks like a kroll metric.
var metricName = regexp.MustCompile(`^kroll_[A-Za-z0-9_]+[A-Za-z0-9]$`)

// sourceMetricNames collects the string literals of kroll's non-test Go
// source that are metric names (Name: of the collectors' options,
// prometheus.NewDesc's first argument, constants).
func sourceMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	fset := token.NewFileSet()
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); n == ".git" || n == "testdata" || n == "vendor" || n == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil && metricName.MatchString(s) {
					names[s] = true
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !names["kroll_hosts_phase"] || !names["kroll_agent_phase_timestamp_seconds"] {
		t.Fatalf("source scan found %d names, not the known ones", len(names))
	}
	return names
}

// raftMetricNames opens a real single-node coordinator store (Raft and
// the WAL on disk) with a registry, applies a command and returns the
// metric names it exports.
func raftMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	reg := prometheus.NewRegistry()
	st, err := store.Open(store.Config{
		NodeID: "c1", DataDir: t.TempDir(), RaftAddr: addr, HTTPAddr: "127.0.0.1:1", Peers: map[string]string{"c1": addr},
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, LeaderLeaseTimeout: 300 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	deadline := time.Now().Add(10 * time.Second)
	for !st.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("single node did not become leader within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	one := 1
	if _, err := st.Apply(t.Context(), fsm.TypeSetDatacenter, fsm.SetDatacenter{Name: "fra", Update: wire.DatacenterUpdate{SlotLimit: &one}}); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	return names
}
