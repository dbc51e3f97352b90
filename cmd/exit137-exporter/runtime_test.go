package main

import "testing"

func TestChooseRuntimes(t *testing.T) {
	tests := []struct {
		name                                      string
		mode                                      string
		dockerOff, dockerSocket, containerdSocket bool
		docker, cri                               bool
	}{
		{"auto, a Docker host", runtimeAuto, false, true, false, true, false},
		{"auto, a Docker host whose daemon is not up yet: Docker, waiting", runtimeAuto, false, false, false, true, false},
		{"auto, a Kubernetes node: containerd alone", runtimeAuto, false, false, true, false, true},
		{"auto, both sockets: both", runtimeAuto, false, true, true, true, true},
		{"auto, Docker turned off", runtimeAuto, true, true, true, false, true},
		{"docker", runtimeDocker, false, false, true, true, false},
		{"containerd, whether its socket is there yet or not", runtimeContainerd, false, true, false, false, true},
	}
	for _, tt := range tests {
		docker, cri := chooseRuntimes(tt.mode, tt.dockerOff, tt.dockerSocket, tt.containerdSocket)
		if docker != tt.docker || cri != tt.cri {
			t.Errorf("%s: docker %v, containerd %v; want %v, %v", tt.name, docker, cri, tt.docker, tt.cri)
		}
	}
}
