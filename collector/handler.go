package collector

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler builds what /metrics serves: the enabled collectors on a
// registry of their own, build_info, and (exporterMetrics) the Go and
// process collectors.
func Handler(deps Deps, exporterMetrics bool, maxRequests int) (http.Handler, error) {
	exit137, err := New(deps)
	if err != nil {
		return nil, err
	}
	deps.Logger.Info("enabled collectors", "collectors", exit137.Names())
	registry := prometheus.NewRegistry()
	registry.MustRegister(versioncollector.NewCollector(Namespace), exit137)
	if exporterMetrics {
		registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return promhttp.HandlerFor(registry, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(deps.Logger.Handler(), slog.LevelError),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: maxRequests,
	}), nil
}
