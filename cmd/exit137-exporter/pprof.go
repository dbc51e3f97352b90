package main

import (
	"net/http"
	"net/http/pprof"
	"runtime"

	"github.com/alecthomas/kingpin/v2"
)

// enablePprof serves Go's profiler at /debug/pprof/, for measuring the
// exporter in place (docs/performance.md). Off by default: a profile
// costs CPU and shows internals.
var enablePprof = kingpin.Flag("web.enable-pprof", "Serve Go's profiler at /debug/pprof/.").Default("false").Bool()

// Go samples one allocation in every 512 KiB for heap profiles by
// default, whenever the binary links the profiler, and keeps each sampled
// stack in a hash table that is never freed: under churn, with many
// distinct stacks sampled, its pages alone added 1.5 MB of RSS that never
// came back. main turns sampling off first thing; it is on again, at Go's
// default rate, only where the profiler is served.
const heapSampleRate = 512 * 1024

func addPprof(mux *http.ServeMux) {
	if !*enablePprof {
		return
	}
	runtime.MemProfileRate = heapSampleRate
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}
