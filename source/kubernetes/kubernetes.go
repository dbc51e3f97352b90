// Package kubernetes is the Kubernetes API's evidence source: the
// kubelet's own kills of this node's containers (a failed liveness or
// startup probe, an eviction, a preemption, a deletion past its grace
// period), which nothing at the container runtime tells apart: each is a
// SIGTERM, a SIGKILL when the grace period runs out, and exit 137. It
// watches the pods bound to this node and the kubelet's events about
// pods, and turns them into evidence for the runs they name.
//
// It never reports an exit: the runtime source counts deaths from the
// runtime's task exits, so a status the kubelet makes up (an evicted
// pod's ContainerStatusUnknown with exit code 137) is never one.
package kubernetes

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
	"github.com/exit137-exporter/exit137-exporter/source"
)

// sourceName is the source label of its health and evidence.
const sourceName = "kubernetes"

// Options configure the source.
type Options struct {
	// Node is this node's name: the pods watched are those with
	// spec.nodeName = Node.
	Node string
	// Kubeconfig is the path of a kubeconfig; empty means the in-cluster
	// config of the pod's service account.
	Kubeconfig string
	// MaxBackoff caps the wait between reconnects.
	MaxBackoff time.Duration
}

// ContainerLookup finds the run the runtime has for a pod's container
// when the pod's status does not name it yet. podUID is the uid in the
// runtime's labels (io.kubernetes.pod.uid).
type ContainerLookup interface {
	KubeContainer(podUID, container string) (id string, ok bool)
}

// Source follows the Kubernetes API for one node.
type Source struct {
	opts   Options
	sink   source.Sink
	health *source.Health
	logger *slog.Logger
	node   *node
	now    func() time.Time

	mu sync.Mutex
	// downSince and downErr say since when, and why, the API could not
	// be read (zero while it can).
	downSince time.Time
	downErr   error
}

// New makes the source; it connects in Run. containers may be nil.
func New(opts Options, sink source.Sink, containers ContainerLookup, health *source.Health, logger *slog.Logger) *Source {
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	s := &Source{opts: opts, sink: sink, health: health, logger: logger, now: time.Now}
	s.node = newNode(containers, func(e attribution.Evidence) {
		health.Event()
		sink.AddEvidence(e)
	})
	return s
}

// Run follows the API until ctx ends, reconnecting with backoff.
func (s *Source) Run(ctx context.Context) {
	s.setDown(s.now(), errNotYet)
	source.Reconnect(ctx, s.health, s.logger, s.opts.MaxBackoff, func(ctx context.Context) (bool, error) {
		established, err := s.session(ctx)
		s.setDown(s.now(), err)
		return established, err
	})
}

// Probe says, at a death, whether the API could be read: when it could
// not, a Kubernetes container's verdict cannot rule out the kubelet's
// kills, and says so. It fits tracker.DeathProbe.
func (s *Source) Probe(at time.Time) []attribution.Evidence {
	s.mu.Lock()
	since, err := s.downSince, s.downErr
	s.mu.Unlock()
	if since.IsZero() {
		return nil
	}
	return []attribution.Evidence{{
		Time:   at,
		Source: sourceName,
		Kind:   attribution.KindKubeAPIUnavailable,
		Detail: "since " + since.UTC().Format(time.TimeOnly) + ": " + err.Error(),
	}}
}

// setDown records that the API could not be read since at (err nil: it
// can again); a longer outage keeps its start.
func (s *Source) setDown(at time.Time, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err == nil:
		s.downSince, s.downErr = time.Time{}, nil
	case s.downSince.IsZero():
		s.downSince, s.downErr = at, err
	default:
		s.downErr = err
	}
}
