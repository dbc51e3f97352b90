package testrig

import (
	"slices"
	"testing"
)

func TestParseStagingReplaces(t *testing.T) {
	gomod := `module k8s.io/kubernetes

go 1.24.0

require (
	k8s.io/api v0.0.0
	go.etcd.io/etcd/server/v3 v3.6.4 // indirect
)

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/kubelet => ./staging/src/k8s.io/kubelet
	github.com/x/y => github.com/x/y v1.2.3
)

replace k8s.io/cri-api => ./staging/src/k8s.io/cri-api
`
	got := parseStagingReplaces([]byte(gomod))
	want := []string{"k8s.io/api", "k8s.io/kubelet", "k8s.io/cri-api"}
	if !slices.Equal(got, want) {
		t.Errorf("parseStagingReplaces = %q, want %q", got, want)
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{
		"/tmp/e137-kube-1/kubelet":     "/tmp/e137-kube-1/kubelet",
		`/tmp/a\040b`:                  "/tmp/a b",
		`/tmp/tab\011here`:             "/tmp/tab\there",
		`/tmp/trailing\`:               `/tmp/trailing\`,
		`/tmp/not\9octal`:              `/tmp/not\9octal`,
		`/var/lib/kubelet/pods/x\134y`: `/var/lib/kubelet/pods/x\y`,
	} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}
