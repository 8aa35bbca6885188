package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// The fuzz targets feed request bodies through the real handlers, backed
// by a real single-node store (one per fuzz target and worker), and check
// that the server never panics and never answers a body with 5xx: it is
// 200 with JSON, or 4xx with exactly {"kind","value"}.

// fuzzEnv is a store with datacenter fra (limit 2, hosts h1..h3, h1
// holding slot token 1) behind a Server.
func fuzzEnv(f *testing.F) *env {
	e := newEnv(f)
	e.setDC("fra", wire.DatacenterUpdate{SlotLimit: ptr(2), FailureBudget: ptr(1000)})
	for _, h := range []string{"h1", "h2", "h3"} {
		e.heartbeat(h, "fra")
	}
	if sl := decodeOK[wire.Slot](f, e.do(http.MethodPost, wire.PathSlotAcquire, tokAgent, wire.SlotRequest{HostID: "h1", Datacenter: "fra"})); sl.Token != 1 {
		f.Fatalf("seed slot token %d, want 1", sl.Token)
	}
	return e
}

// serveFuzz runs one request through the handler and checks the answer.
func (e *env) serveFuzz(t *testing.T, method, path, token string, body []byte, header ...string) int {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	e.api.ServeHTTP(rec, req)
	switch {
	case rec.Code == http.StatusOK:
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %s %q: 200 with invalid JSON %q", method, path, body, rec.Body.Bytes())
		}
	case rec.Code >= 400 && rec.Code < 500:
		errorBody(t, rec.Code, rec.Result().Header, rec.Body.Bytes())
	default:
		t.Fatalf("%s %s %q: status %d, body %s", method, path, body, rec.Code, rec.Body.Bytes())
	}
	return rec.Code
}

// seeds adds each body to the corpus once per selector value.
func seeds(f *testing.F, selectors int, bodies ...string) {
	for sel := range selectors {
		for _, b := range bodies {
			f.Add(uint8(sel), []byte(b))
		}
	}
}

// commonSeeds are malformed bodies every decoder must refuse with 4xx.
var commonSeeds = []string{
	``, ` `, `{}`, `[]`, `null`, `true`, `0`, `"x"`, `{`, `}`, `{"a":1}`, `{} {}`, `{}x`,
	"\xff", `{"\u0000":1}`, strings.Repeat("[", 100) + strings.Repeat("]", 100),
	`{"host_id":` + strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40) + `}`,
}

func FuzzFleetLockBody(f *testing.F) {
	e := fuzzEnv(f)
	seeds(f, 2, append(commonSeeds,
		`{"client_params":{"id":"h1","group":"fra"}}`,
		`{"client_params":{"id":"node-a","group":"fra"}}`,
		`{"client_params":{"id":"node-b","group":"nowhere"}}`,
		`{"client_params":{"id":"","group":"fra"}}`,
		`{"client_params":{"id":"h2","group":"fra","x":1}}`,
		`{"client_params":{"id":"h2","group":"fra"},"client_params":{}}`,
		`{"client_params":{"id":"h\u0032","group":"fr\u0061"}}`,
		`{"client_params":null}`,
		`{"client_params":{"id":null,"group":"fra"}}`,
		`{"CLIENT_PARAMS":{"ID":"h2","GROUP":"fra"}}`,
	)...)
	f.Fuzz(func(t *testing.T, sel uint8, body []byte) {
		path := wire.PathFleetLockPreReboot
		if sel%2 == 1 {
			path = wire.PathFleetLockSteady
		}
		e.serveFuzz(t, http.MethodPost, path, tokAgent, body, flHeader, "true")
	})
}

func FuzzHeartbeatBody(f *testing.F) {
	e := fuzzEnv(f)
	seeds(f, 1, append(commonSeeds,
		`{"host_id":"h2","datacenter":"fra"}`,
		`{"host_id":"h4","datacenter":"fra","kernel_line":"6.12","kernel":"6.12.85","phase":"staged","boot_id":"b"}`,
		`{"host_id":"h1","datacenter":"ams"}`,
		`{"host_id":"h2","datacenter":"fra","phase":"bogus"}`,
		`{"host_id":"h2","datacenter":"fra","policies":[{"id":"copy-fail","version":3,"state":"enforcing","detail":"ok"}]}`,
		`{"host_id":"h2","datacenter":"fra","policies":[{"id":"p","version":-1,"state":"x"}]}`,
		`{"host_id":"h2","datacenter":"fra","policies":null}`,
		`{"host_id":"h2","datacenter":"fra","policies":[null]}`,
		`{"host_id":"h2","datacenter":"fra","fleetlock":true}`,
		`{"host_id":"h2","datacenter":"fra","token":1}`,
		`{"host_id":1e400,"datacenter":"fra"}`,
	)...)
	f.Fuzz(func(t *testing.T, _ uint8, body []byte) {
		e.serveFuzz(t, http.MethodPost, wire.PathHeartbeat, tokAgent, body)
	})
}

func FuzzSlotRequestBody(f *testing.F) {
	e := fuzzEnv(f)
	paths := []string{wire.PathSlotAcquire, wire.PathSlotRenew, wire.PathSlotRelease, wire.PathSlotsRelease}
	seeds(f, len(paths), append(commonSeeds,
		`{"host_id":"h1","datacenter":"fra"}`,
		`{"host_id":"h2","datacenter":"fra"}`,
		`{"host_id":"h1","datacenter":"fra","token":1}`,
		`{"host_id":"h1","datacenter":"fra","token":2}`,
		`{"host_id":"h1","datacenter":"fra","token":-1}`,
		`{"host_id":"h1","datacenter":"fra","token":1.5}`,
		`{"host_id":"h1","datacenter":"fra","token":18446744073709551615}`,
		`{"host_id":"h1","datacenter":"fra","token":18446744073709551616}`,
		`{"host_id":"h1","datacenter":"fra","token":"1"}`,
		`{"host_id":"h1","datacenter":"fra","reason":"operator says so"}`,
		`{"host_id":"h9","datacenter":"nowhere","token":1}`,
	)...)
	f.Fuzz(func(t *testing.T, sel uint8, body []byte) {
		path := paths[int(sel)%len(paths)]
		e.serveFuzz(t, http.MethodPost, path, tokAdmin, body)
	})
}

func FuzzDatacenterUpdateBody(f *testing.F) {
	e := fuzzEnv(f)
	names := []string{"fra", "fz", "new-dc"}
	seeds(f, len(names), append(commonSeeds,
		`{"slot_limit":2}`,
		`{"slot_pct":25}`,
		`{"slot_limit":2,"slot_pct":25}`,
		`{"slot_limit":0}`,
		`{"slot_limit":-1}`,
		`{"slot_limit":9223372036854775807,"min_healthy_pct":100}`,
		`{"slot_limit":9223372036854775808}`,
		`{"min_healthy_pct":101}`,
		`{"failure_budget":-1}`,
		`{"tier":"staging"}`,
		`{"tier":"core"}`,
		`{"window":"Mon-Sun 02:00-05:00 Europe/Berlin"}`,
		`{"window":"Sat,Sun 22:00-04:00 UTC"}`,
		`{"window":"Mon-Fri 02:00-02:00 UTC"}`,
		`{"window":"Mon-Sun 24:00-25:99 Local"}`,
		`{"window":"always"}`,
		`{"window":""}`,
		`{"window":null}`,
		`{"window":"Mon-Sun 02:00-05:00 ../../etc/passwd"}`,
	)...)
	f.Fuzz(func(t *testing.T, sel uint8, body []byte) {
		name := names[int(sel)%len(names)]
		e.serveFuzz(t, http.MethodPut, wire.PathDatacenter+name, tokOperate, body)
	})
}

func FuzzHealthBody(f *testing.F) {
	e := fuzzEnv(f)
	seeds(f, 1, append(commonSeeds,
		`{"host_id":"h2","datacenter":"fra","healthy":true}`,
		`{"host_id":"h2","datacenter":"fra","healthy":false,"kernel":"6.12.85","detail":"systemd degraded"}`,
		`{"host_id":"h1","datacenter":"fra","token":1,"healthy":true}`,
		`{"host_id":"h1","datacenter":"fra","token":7,"healthy":true}`,
		`{"host_id":"h9","datacenter":"fra","healthy":true}`,
		`{"host_id":"h2","datacenter":"ams","healthy":false}`,
		`{"host_id":"h2","datacenter":"fra","healthy":"yes"}`,
		`{"host_id":"h2","datacenter":"fra","healthy":null}`,
	)...)
	f.Fuzz(func(t *testing.T, _ uint8, body []byte) {
		e.serveFuzz(t, http.MethodPost, wire.PathHealth, tokAgent, body)
	})
}

// FuzzOperatorBodies feeds the newer operator bodies (releases, policies,
// rollouts) through their handlers.
func FuzzOperatorBodies(f *testing.F) {
	e := fuzzEnv(f)
	paths := []string{wire.PathReleases, wire.PathPolicies, wire.PathPolicyRetire, wire.PathRollouts, wire.PathRollout + "r1/pause"}
	seeds(f, len(paths), append(commonSeeds,
		`{"manifest":{"id":"r1"},"signature":{}}`,
		`{"manifest":"x","signature":"y"}`,
		`{"document":"id: p\nversion: 1\n","signature":{"alg":"ed25519"}}`,
		`{"document":"`+strings.Repeat("a", 70000)+`","signature":{}}`,
		`{"id":"copy-fail","reason":"fixed"}`,
		`{"release":"r1","waves":[0.5,0.2]}`,
		`{"release":"r1","waves":[0.1,1],"canary":["fra"],"soak_seconds":-1}`,
		`{"release":"r1","expedite":true}`,
		`{"release":"r1","expedite":true,"reason":"CVE","budget":-3}`,
		`{"reason":"looking"}`,
	)...)
	f.Fuzz(func(t *testing.T, sel uint8, body []byte) {
		e.serveFuzz(t, http.MethodPost, paths[int(sel)%len(paths)], tokOperate, body)
	})
}
