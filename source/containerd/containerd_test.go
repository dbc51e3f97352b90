package containerd

import (
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/exit137-exporter/exit137-exporter/source"
	"github.com/exit137-exporter/exit137-exporter/tracker"
)

func TestNewOptions(t *testing.T) {
	tr := tracker.New(tracker.Config{}, slog.New(slog.DiscardHandler))
	health := source.NewRegistry().Source("containerd")
	cases := []struct {
		name       string
		opts       Options
		target     string
		namespaces []string
		fails      bool
	}{
		{"a path, the CRI's namespace by default", Options{Address: "/run/containerd/containerd.sock"},
			"unix:///run/containerd/containerd.sock", []string{"k8s.io"}, false},
		{"a unix:// address, namespaces of one's own", Options{Address: "unix:///x.sock", Namespaces: []string{"default", "k8s.io"}},
			"unix:///x.sock", []string{"default", "k8s.io"}, false},
		{"no address", Options{}, "", nil, true},
		{"Docker's namespace is the docker source's", Options{Address: "/x.sock", Namespaces: []string{"k8s.io", "moby"}}, "", nil, true},
	}
	for _, c := range cases {
		s, err := New(c.opts, tr, health, slog.New(slog.DiscardHandler))
		if c.fails {
			if err == nil {
				t.Errorf("%s: no error", c.name)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if s.target != c.target || !slices.Equal(s.opts.Namespaces, c.namespaces) || s.opts.MaxBackoff != 2*time.Second {
			t.Errorf("%s: target %q namespaces %v backoff %v", c.name, s.target, s.opts.Namespaces, s.opts.MaxBackoff)
		}
	}
}
