package main

import (
	"net/http"
	"net/http/pprof"

	"github.com/alecthomas/kingpin/v2"
)

// enablePprof serves Go's profiler at /debug/pprof/, for measuring the
// exporter in place (docs/performance.md). Off by default: a profile
// costs CPU and shows internals.
var enablePprof = kingpin.Flag("web.enable-pprof", "Serve Go's profiler at /debug/pprof/.").Default("false").Bool()

func addPprof(mux *http.ServeMux) {
	if !*enablePprof {
		return
	}
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}
