package api

import (
	"net/http"
	"net/http/pprof"
)

// pathDebugPprof is where the Go runtime's profiles are served, to admins
// only: a CPU profile or an execution trace of a loaded coordinator is
// how an operator finds out what it spends its time on.
const pathDebugPprof = "/debug/pprof/"

// debugPprof serves the runtime's profiles (net/http/pprof's handlers,
// mounted here rather than on http.DefaultServeMux, which this server
// never serves).
func (s *Server) debugPprof(w http.ResponseWriter, r *http.Request, _ Identity) {
	switch name := r.PathValue("name"); name {
	case "":
		pprof.Index(w, r)
	case "cmdline":
		pprof.Cmdline(w, r)
	case "profile":
		pprof.Profile(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "trace":
		pprof.Trace(w, r)
	default:
		pprof.Handler(name).ServeHTTP(w, r)
	}
}
