// Package containerd is the evidence source of a containerd host (a
// Kubernetes node, or containers made with ctr or nerdctl), over
// containerd's gRPC API: its event stream (/tasks/start, /tasks/exit,
// /tasks/oom, /containers/create, /containers/delete) in the namespaces
// it is told, its container and task lists, and the CRI RuntimeService on
// the same socket for the exits of a kubelet's containers whose task the
// CRI plugin already deleted. Like the docker source it feeds the tracker
// with container metadata, starts and exits, and the oom evidence; a
// pod's sandbox and an exec'd process's exit are never a death.
package containerd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/exit137-exporter/exit137-exporter/source"
	"github.com/exit137-exporter/exit137-exporter/tracker"
)

// DefaultNamespace is the CRI plugin's namespace: a kubelet's containers.
const DefaultNamespace = "k8s.io"

// dockerNamespace is dockerd's own namespace: its containers are the
// docker source's, and counting them here would count them twice.
const dockerNamespace = "moby"

// Options configure the source.
type Options struct {
	// Address is containerd's socket: a path, or unix://path.
	Address string
	// Namespaces are the containerd namespaces followed; empty means
	// DefaultNamespace.
	Namespaces []string
	// OOMKills reads a container's cgroup oom_kill counter, so that a rise
	// is seen before the cgroup is removed; pid is the init's when known.
	// nil turns it off.
	OOMKills func(id string, pid int) (uint64, bool)
	// MaxBackoff caps the wait between reconnects.
	MaxBackoff time.Duration
}

// Source follows one containerd.
type Source struct {
	opts    Options
	target  string
	tracker *tracker.Tracker
	health  *source.Health
	logger  *slog.Logger

	// The session goroutine alone uses what follows.
	conn *rpcConn
	// known is what the source learnt of each container: whether it is a
	// sandbox, whether the CRI made it, when it was created.
	known map[string]containerInfo
	runs  runBook
	// barriers counts the barrier events this source published.
	barriers uint64
	nonce    string
}

// containerInfo is what the source keeps of a container's record.
type containerInfo struct {
	sandbox, cri bool
	created      time.Time
}

// New checks the options; it does not connect.
func New(opts Options, t *tracker.Tracker, health *source.Health, logger *slog.Logger) (*Source, error) {
	if opts.Address == "" {
		return nil, errors.New("containerd address is empty")
	}
	if len(opts.Namespaces) == 0 {
		opts.Namespaces = []string{DefaultNamespace}
	}
	for _, ns := range opts.Namespaces {
		if ns == dockerNamespace {
			return nil, fmt.Errorf("containerd namespace %q is Docker's: follow Docker with the docker source", ns)
		}
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 2 * time.Second // a local socket: every second away is a second unseen
	}
	target := opts.Address
	if !strings.Contains(target, "://") {
		target = "unix://" + target
	}
	return &Source{opts: opts, target: target, tracker: t, health: health, logger: logger,
		known: map[string]containerInfo{}, runs: runBook{}, nonce: fmt.Sprintf("%x", time.Now().UnixNano())}, nil
}

// Run follows containerd until ctx ends, reconnecting with backoff.
func (s *Source) Run(ctx context.Context) {
	source.Reconnect(ctx, s.health, s.logger, s.opts.MaxBackoff, s.session)
}

func (s *Source) dial() error {
	conn, err := newRPCConn(s.target)
	if err != nil {
		return fmt.Errorf("containerd client for %q: %w", s.opts.Address, err)
	}
	s.conn = conn
	return nil
}
