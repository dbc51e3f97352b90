package docker

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/exit137-exporter/exit137-exporter/attribution"
)

// Version answers as measured on the project's machines (GET /version):
// Debian's docker.io 20.10 and Debian's podman 4.3.1 (podman system
// service), trimmed of the fields RuntimeOf does not read.
var (
	debianDockerVersion = decodeVersion(`{"Platform":{"Name":""},"Components":[
		{"Name":"Engine","Version":"20.10.24+dfsg1","Details":{"ApiVersion":"1.41"}},
		{"Name":"containerd","Version":"1.6.20~ds1"},{"Name":"runc","Version":"1.1.5+ds1"},
		{"Name":"docker-init","Version":"0.19.0"}],
		"Version":"20.10.24+dfsg1","ApiVersion":"1.41","MinAPIVersion":"1.12"}`)
	dockerCEVersion = decodeVersion(`{"Platform":{"Name":"Docker Engine - Community"},"Components":[
		{"Name":"Engine","Version":"27.3.1"},{"Name":"containerd","Version":"1.7.22"}],
		"Version":"27.3.1","ApiVersion":"1.47"}`)
	podmanVersion = decodeVersion(`{"Platform":{"Name":"linux/amd64/debian-12"},"Components":[
		{"Name":"Podman Engine","Version":"4.3.1","Details":{"APIVersion":"4.3.1","MinAPIVersion":"4.0.0"}},
		{"Name":"Conmon","Version":"conmon version 2.1.6, commit: unknown"},
		{"Name":"OCI Runtime (runc)","Version":"runc version 1.1.5+ds1"}],
		"Version":"4.3.1","ApiVersion":"1.41","MinAPIVersion":"1.24"}`)
)

func decodeVersion(s string) Version {
	var v Version
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		panic(err)
	}
	return v
}

func TestRuntimeOf(t *testing.T) {
	tests := []struct {
		name string
		v    Version
		want Runtime
	}{
		{"Debian docker.io", debianDockerVersion, Runtime{RuntimeDocker, "20.10.24+dfsg1", "1.41"}},
		{"Docker CE", dockerCEVersion, Runtime{RuntimeDocker, "27.3.1", "1.47"}},
		{"Debian podman", podmanVersion, Runtime{RuntimePodman, "4.3.1", "1.41"}},
		{"podman named only by its platform", Version{Platform: struct{ Name string }{"Podman Engine"}, Version: "5.2.0", APIVersion: "1.41"},
			Runtime{RuntimePodman, "5.2.0", "1.41"}},
		{"an empty answer", Version{}, Runtime{Name: RuntimeDocker}},
	}
	for _, tt := range tests {
		if got := RuntimeOf(tt.v); got != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestDrainEnd(t *testing.T) {
	now := time.Now()
	if got := drainEnd(Runtime{Name: RuntimeDocker}, now); !got.Equal(now) {
		t.Errorf("docker: the drain ends now, got %v", got.Sub(now))
	}
	if got := drainEnd(Runtime{Name: RuntimePodman}, now); got.Sub(now) != podmanUntilLead {
		t.Errorf("podman: the drain ends %v ahead, got %v", podmanUntilLead, got.Sub(now))
	}
}

// Podman's events as its compatible API sends them (measured, 4.3.1):
// every one carries podId and containerExitCode; kill names no signal.
func TestPodmanEvidence(t *testing.T) {
	at := time.Date(2026, 11, 30, 19, 56, 23, 190333772, time.UTC)
	msg := func(action string, attrs map[string]string) Message {
		all := map[string]string{"containerExitCode": "0", "image": "localhost/exit137-helper:test",
			"io.buildah.version": "1.28.2", "name": "t-kill", "podId": ""}
		for k, v := range attrs {
			all[k] = v
		}
		return Message{Type: ContainerEvent, Action: action, TimeNano: at.UnixNano(),
			Actor: Actor{ID: "e6bbe441196a", Attributes: all}}
	}
	kill := msg("kill", nil)
	if !podmanEvent(kill) {
		t.Fatal("a podman event not recognised")
	}
	e, ok := Evidence(kill)
	if !ok || e.Kind != attribution.KindDockerKill || e.Signal != 0 || e.Detail != "podman event: kill (the runtime does not say which signal)" {
		t.Errorf("podman kill: %+v %v", e, ok)
	}
	for _, action := range []string{"init", "cleanup", "sync", "remove", "die"} {
		if e, ok := Evidence(msg(action, map[string]string{"exitCode": "137", "containerExitCode": "137"})); ok {
			t.Errorf("podman %s is no evidence: %+v", action, e)
		}
	}
	docker := Message{Action: "kill", Actor: Actor{ID: "c1", Attributes: map[string]string{"name": "web", "image": "img", "signal": "9"}}}
	if podmanEvent(docker) {
		t.Error("a docker event taken for podman's")
	}
	if e, _ := Evidence(docker); e.Detail != "docker event: kill, signal 9" {
		t.Errorf("docker kill detail %q", e.Detail)
	}
}
