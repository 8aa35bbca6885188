package api

import (
	"encoding/json"
	"net/http"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// writeJSON writes v with status 200.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// writeError writes a wire.Error.
func writeError(w http.ResponseWriter, status int, kind, value string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(wire.Error{Kind: kind, Value: value})
}

// statusOf maps an error kind to its HTTP status.
func statusOf(kind string) int {
	switch kind {
	case wire.KindMissingHeader, wire.KindInvalidClientParams, wire.KindInvalidRequest:
		return http.StatusBadRequest
	case wire.KindRequestTooLarge:
		return http.StatusRequestEntityTooLarge
	case wire.KindUnauthorized:
		return http.StatusUnauthorized
	case wire.KindForbidden:
		return http.StatusForbidden
	case wire.KindNotFound, wire.KindUnknownDatacenter:
		return http.StatusNotFound
	case wire.KindMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case wire.KindNoLeader, wire.KindOutcomeUnknown:
		return http.StatusServiceUnavailable
	case wire.KindOverloaded:
		return http.StatusTooManyRequests
	case wire.KindInternal:
		return http.StatusInternalServerError
	case wire.KindStaleToken, wire.KindNotHolder, wire.KindConflict:
		return http.StatusConflict
	}
	// Slot denials: the lock is busy or not allowed now.
	return http.StatusConflict
}

// writeResultError writes a refused command's error.
func writeResultError(w http.ResponseWriter, e *wire.Error) {
	writeError(w, statusOf(e.Kind), e.Kind, e.Value)
}
