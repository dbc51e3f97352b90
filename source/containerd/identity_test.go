package containerd

import (
	"testing"

	"github.com/exit137-exporter/exit137-exporter/tracker"
)

func TestMetaOf(t *testing.T) {
	const image = "docker.io/library/app:1"
	cases := []struct {
		name   string
		labels map[string]string
		want   tracker.Meta
	}{
		{"a kubelet's container: namespace/pod/container", podLabels("app"),
			tracker.Meta{ID: id1, Name: "shop/web-0/app", Image: image, Namespace: "shop", Pod: "web-0", PodUID: "uid-1", Container: "app"}},
		{"nerdctl's name", map[string]string{labelNerdctlName: "cache"},
			tracker.Meta{ID: id1, Name: "cache", Image: image}},
		{"ctr: the id", nil, tracker.Meta{ID: id1, Name: id1, Image: image}},
		{"a pod label without the container's name is not an identity", map[string]string{labelPodNamespace: "shop", labelPodName: "web-0"},
			tracker.Meta{ID: id1, Name: id1, Image: image, Namespace: "shop", Pod: "web-0"}},
	}
	for _, c := range cases {
		if got := metaOf(id1, image, c.labels); got != c.want {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c.want)
		}
	}
}

func TestKinds(t *testing.T) {
	cases := []struct {
		labels       map[string]string
		sandbox, cri bool
	}{
		{sandboxLabels, true, false},
		{podLabels("app"), false, true},
		{map[string]string{labelNerdctlName: "cache"}, false, false},
		{nil, false, false},
	}
	for _, c := range cases {
		if isSandbox(c.labels) != c.sandbox || isCRIContainer(c.labels) != c.cri {
			t.Errorf("%v: sandbox %v cri %v, want %v %v", c.labels, isSandbox(c.labels), isCRIContainer(c.labels), c.sandbox, c.cri)
		}
	}
}
