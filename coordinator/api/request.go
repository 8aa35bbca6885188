package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/release"
	"github.com/kroll-dev/kroll/pkg/strictjson"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// requestError is a rejected request: its kind and message.
type requestError struct {
	kind, value string
}

func (e *requestError) Error() string { return e.kind + ": " + e.value }

func invalid(format string, args ...any) *requestError {
	return &requestError{kind: wire.KindInvalidRequest, value: fmt.Sprintf(format, args...)}
}

// readBody reads at most wire.MaxBodySize bytes of the request body.
func readBody(r *http.Request) ([]byte, *requestError) {
	// A body that declares its length is read into one buffer of that
	// size (heartbeats: no growing copies); the limit holds either way.
	buf := bytes.NewBuffer(make([]byte, 0, min(max(r.ContentLength, 0), wire.MaxBodySize)+1))
	_, err := buf.ReadFrom(io.LimitReader(r.Body, wire.MaxBodySize+1))
	data := buf.Bytes()
	if err != nil {
		return nil, invalid("read body: %v", err)
	}
	if len(data) > wire.MaxBodySize {
		return nil, &requestError{kind: wire.KindRequestTooLarge, value: fmt.Sprintf("body exceeds %d bytes", wire.MaxBodySize)}
	}
	return data, nil
}

// decode strictly decodes the JSON body into v (no unknown or duplicate
// fields, one value) and runs validate on it. An empty body decodes as {}
// when emptyOK.
func decode[T any](d *strictjson.Decoder, r *http.Request, emptyOK bool, validate func(*T) error) (T, *requestError) {
	var v T
	data, rerr := readBody(r)
	if rerr != nil {
		return v, rerr
	}
	if emptyOK && len(strings.TrimSpace(string(data))) == 0 {
		data = []byte("{}")
	}
	if err := d.Decode(data, wire.MaxBodySize, &v); err != nil {
		if errors.Is(err, strictjson.ErrTooLarge) {
			return v, &requestError{kind: wire.KindRequestTooLarge, value: err.Error()}
		}
		return v, invalid("%v", err)
	}
	if validate != nil {
		if err := validate(&v); err != nil {
			return v, invalid("%v", err)
		}
	}
	return v, nil
}

// writeRequestError writes a rejected request.
func writeRequestError(w http.ResponseWriter, e *requestError) {
	writeError(w, statusOf(e.kind), e.kind, e.value)
}

// Validation of the request types, in one place.

func checkName(field, v string) error {
	if !fsm.ValidName(v) {
		return fmt.Errorf("%s: %q is not a valid name (letters, digits, '.', '_', ':', '-'; at most 128)", field, v)
	}
	return nil
}

func validateFleetLock(req *wire.FleetLockRequest) error {
	if req.ClientParams.ID == "" || req.ClientParams.Group == "" {
		return errors.New("client_params.id and client_params.group must not be empty")
	}
	return errors.Join(checkName("client_params.id", req.ClientParams.ID), checkName("client_params.group", req.ClientParams.Group))
}

func validateHeartbeat(hb *wire.Heartbeat) error {
	errs := []error{checkName("host_id", hb.HostID), checkName("datacenter", hb.Datacenter)}
	if len(hb.Policies) > 256 {
		errs = append(errs, errors.New("policies: at most 256"))
	}
	if hb.GossipAddr != "" {
		if _, err := netip.ParseAddrPort(hb.GossipAddr); err != nil {
			errs = append(errs, fmt.Errorf("gossip_addr: %w", err))
		}
	}
	if hb.AssignedLine != "" && !fsm.ValidLine(hb.AssignedLine) {
		errs = append(errs, fmt.Errorf("assigned_line: %q is not a kernel line (MAJOR.MINOR)", hb.AssignedLine))
	}
	for field, v := range map[string]string{"kernel_line": hb.KernelLine, "kernel": hb.Kernel, "phase": hb.Phase, "boot_id": hb.BootID} {
		if len(v) > 256 {
			errs = append(errs, fmt.Errorf("%s: at most 256 bytes", field))
		}
	}
	if !wire.ValidDesiredVersion(hb.DesiredVersion) {
		errs = append(errs, errors.New("desired_version: 64 lower-case hex digits or empty"))
	}
	if hb.Phase != "" && !knownPhase(hb.Phase) {
		errs = append(errs, fmt.Errorf("phase: unknown phase %q", hb.Phase))
	}
	if v := hb.View; v != nil && (v.Alive < 0 || v.Draining < 0 || v.Rebooting < 0 || v.Dead < 0 || v.Alive > 1<<20 || v.Dead > 1<<20) {
		errs = append(errs, errors.New("view: counts must be between 0 and 2^20"))
	}
	for i, p := range hb.Policies {
		if !p.State.Valid() {
			errs = append(errs, fmt.Errorf("policies[%d].state: %q is not enforcing, auditing, unavailable, retired or rejected", i, p.State))
		}
		if len(p.ID) > 63 || len(p.Detail) > 1024 {
			errs = append(errs, fmt.Errorf("policies[%d]: id or detail too long", i))
		}
	}
	return errors.Join(errs...)
}

func knownPhase(p string) bool {
	switch p {
	case wire.PhaseIdle, wire.PhaseStaging, wire.PhaseStaged, wire.PhaseWaitingSlot, wire.PhaseDraining,
		wire.PhaseRebooting, wire.PhaseVerifying, wire.PhaseHealthy, wire.PhaseStagingFailed,
		wire.PhaseInstalling, wire.PhaseInstallFailed,
		wire.PhaseDrainTimeout, wire.PhaseWrongKernel, wire.PhaseUnhealthy, wire.PhaseRollback, wire.PhaseFailed:
		return true
	}
	return false
}

func validateSlotRequest(needToken bool) func(*wire.SlotRequest) error {
	return func(req *wire.SlotRequest) error {
		errs := []error{checkName("host_id", req.HostID), checkName("datacenter", req.Datacenter)}
		if needToken && req.Token == 0 {
			errs = append(errs, errors.New("token: required"))
		}
		if !needToken && req.Token != 0 {
			errs = append(errs, errors.New("token: must be empty when acquiring"))
		}
		if len(req.Reason) > 1024 {
			errs = append(errs, errors.New("reason: at most 1024 bytes"))
		}
		if req.Release != "" {
			errs = append(errs, checkName("release", req.Release))
		}
		return errors.Join(errs...)
	}
}

func validateHealth(rep *wire.HealthReport) error {
	errs := []error{checkName("host_id", rep.HostID), checkName("datacenter", rep.Datacenter)}
	if len(rep.Detail) > 4096 || len(rep.Kernel) > 256 {
		errs = append(errs, errors.New("detail (4096) or kernel (256) too long"))
	}
	return errors.Join(errs...)
}

func validateJoin(req *wire.JoinRequest) error {
	errs := []error{checkName("id", req.ID)}
	if req.RaftAddr == "" {
		errs = append(errs, errors.New("raft_addr: required"))
	}
	return errors.Join(errs...)
}

func validateRemove(req *wire.RemoveRequest) error { return checkName("id", req.ID) }

func validateSlotRelease(req *wire.SlotReleaseRequest) error {
	return errors.Join(checkName("datacenter", req.Datacenter), checkName("host_id", req.HostID))
}

// validateDatacenterUpdate refuses an update that sets both slot limits:
// they replace each other, so one of them would be silently dropped.
func validateDatacenterUpdate(u *wire.DatacenterUpdate) error {
	if u.SlotLimit != nil && u.SlotPct != nil {
		return errors.New("slot_limit and slot_pct: set at most one")
	}
	if u.Line != nil && !fsm.ValidLine(*u.Line) {
		return fmt.Errorf("line: %q is not a kernel line (MAJOR.MINOR, such as 6.12)", *u.Line)
	}
	if u.Line != nil && u.LinePct == nil {
		return errors.New("line: give the share of hosts with line_pct (1 to 100)")
	}
	if u.LinePct != nil && (*u.LinePct < 0 || *u.LinePct > 100) {
		return fmt.Errorf("line_pct: %d is not 0 (no rule) to 100", *u.LinePct)
	}
	if u.TargetRelease != nil {
		return checkName("target_release", *u.TargetRelease)
	}
	return nil
}

func validatePause(req *wire.PauseRequest) error {
	if len(req.Reason) > 1024 {
		return errors.New("reason: at most 1024 bytes")
	}
	return nil
}

func validateReleaseAdd(req *wire.ReleaseAddRequest) error {
	if len(req.Manifest) == 0 || len(req.Signature) == 0 {
		return errors.New("manifest and signature are required")
	}
	return nil
}

func validatePolicyPush(req *wire.PolicyPushRequest) error {
	if req.Document == "" || len(req.Signature) == 0 {
		return errors.New("document and signature are required")
	}
	return nil
}

func validatePolicyRetire(req *wire.PolicyRetireRequest) error {
	if req.ID == "" || len(req.ID) > 63 {
		return errors.New("id: 1 to 63 characters")
	}
	if len(req.Reason) > 1024 {
		return errors.New("reason: at most 1024 bytes")
	}
	return nil
}

func validateRolloutStart(req *wire.RolloutStartRequest) error {
	errs := []error{checkName("release", req.Release)}
	if req.ID != "" {
		errs = append(errs, checkName("id", req.ID))
	}
	if len(req.Waves) > 20 {
		errs = append(errs, errors.New("waves: at most 20"))
	}
	for i, f := range req.Waves {
		if f <= 0 || f > 1 || (i > 0 && f <= req.Waves[i-1]) {
			errs = append(errs, fmt.Errorf("waves: %v: want increasing fractions in (0, 1]", req.Waves))
			break
		}
	}
	if len(req.Canary) > 100 {
		errs = append(errs, errors.New("canary: at most 100 datacenters"))
	}
	for i, c := range req.Canary {
		errs = append(errs, checkName(fmt.Sprintf("canary[%d]", i), c))
	}
	if req.SoakSeconds < 0 || req.CycleSeconds < 0 || req.SoakSeconds > 90*86400 || req.CycleSeconds > 366*86400 {
		errs = append(errs, errors.New("soak_seconds (≤ 90 days) and cycle_seconds (≤ 366 days) must not be negative"))
	}
	if req.Budget != nil && (*req.Budget < 0 || *req.Budget > 1<<20) {
		errs = append(errs, errors.New("budget: 0 to 2^20"))
	}
	if req.Expedite && len(strings.TrimSpace(req.Reason)) == 0 {
		errs = append(errs, errors.New("reason: an expedited rollout needs one (it is recorded in the event log)"))
	}
	if req.Force && len(strings.TrimSpace(req.Reason)) == 0 {
		errs = append(errs, errors.New("reason: a forced rollout needs one (it is recorded in the event log)"))
	}
	if len(req.Reason) > 1024 {
		errs = append(errs, errors.New("reason: at most 1024 bytes"))
	}
	return errors.Join(errs...)
}

func validateRolloutAction(req *wire.RolloutActionRequest) error {
	if len(req.Reason) > 1024 {
		return errors.New("reason: at most 1024 bytes")
	}
	return nil
}

// validateCVE checks the CVE id of a cve request.
func validateCVE(id string) *requestError {
	if err := release.CheckCVE(id); err != nil {
		return invalid("cve: %v", err)
	}
	return nil
}

func validateTrainSet(req *wire.TrainSetRequest) error {
	var errs []error
	if len(req.Staging) > 100 {
		errs = append(errs, errors.New("staging: at most 100 datacenters"))
	}
	for _, dc := range req.Staging {
		errs = append(errs, checkName("staging", dc))
	}
	for _, d := range []struct {
		name string
		v    int64
	}{{"staging_soak_seconds", req.StagingSoakSeconds}, {"control_soak_seconds", req.ControlSoakSeconds}, {"edge_cycle_seconds", req.EdgeCycleSeconds}} {
		if d.v <= 0 || d.v > 10*365*24*3600 {
			errs = append(errs, fmt.Errorf("%s: %d: want a positive duration", d.name, d.v))
		}
	}
	if len(req.Departure) > 100 {
		errs = append(errs, errors.New("departure: at most 100 bytes"))
	}
	if len(req.Freezes) > 32 {
		errs = append(errs, errors.New("freezes: at most 32"))
	}
	return errors.Join(errs...)
}

func validateReason(reason string) error {
	switch {
	case strings.TrimSpace(reason) == "":
		return errors.New("reason: required (it is recorded in the event log)")
	case len(reason) > 256:
		return errors.New("reason: at most 256 bytes")
	}
	return nil
}

func validateTrainAction(req *wire.TrainActionRequest) error { return validateReason(req.Reason) }

func validateTrainExpedite(req *wire.TrainExpediteRequest) error {
	return errors.Join(checkName("release", req.Release), validateReason(req.Reason))
}

func validateReleaseReject(req *wire.ReleaseRejectRequest) error { return validateReason(req.Reason) }
