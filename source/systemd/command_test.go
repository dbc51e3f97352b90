package systemd

import (
	"slices"
	"testing"
)

func TestContainerNames(t *testing.T) {
	cases := []struct {
		name     string
		commands [][]string
		want     []string
	}{
		{"run --name", [][]string{{"/usr/bin/docker", "run", "--rm", "--name", "web", "nginx"}}, []string{"web"}},
		{"bare docker", [][]string{{"docker", "run", "--name", "web", "nginx"}}, []string{"web"}},
		{"--name=", [][]string{{"docker", "run", "--name=web", "nginx"}}, []string{"web"}},
		{"-d and grouped shorts", [][]string{{"docker", "run", "-dit", "--name", "web", "nginx"}}, []string{"web"}},
		{"valued flags before --name", [][]string{{"docker", "run", "-e", "A=1", "-p", "80:80", "-v", "/a:/b",
			"--memory", "64m", "--network", "none", "--name", "web", "nginx"}}, []string{"web"}},
		{"short valued flag with attached value", [][]string{{"docker", "run", "-p8080:80", "--name", "web", "img"}}, []string{"web"}},
		{"--name after the image is the container's own", [][]string{{"docker", "run", "--rm", "img", "--name", "x"}}, nil},
		{"value that looks like a name", [][]string{{"docker", "run", "-e", "--name", "img"}}, nil},
		{"global options", [][]string{{"docker", "-H", "unix:///run/docker.sock", "--log-level", "warn", "run", "--name", "web", "img"}}, []string{"web"}},
		{"docker container run", [][]string{{"docker", "container", "run", "--name", "web", "img"}}, []string{"web"}},
		{"docker create", [][]string{{"docker", "create", "--name", "web", "img"}}, []string{"web"}},
		{"docker start -a", [][]string{{"/usr/bin/docker", "start", "-a", "web"}}, []string{"web"}},
		{"stop -t", [][]string{{"docker", "stop", "-t", "1", "web"}}, []string{"web"}},
		{"stop --time=", [][]string{{"docker", "stop", "--time=30", "web", "db"}}, []string{"web", "db"}},
		{"kill -s", [][]string{{"docker", "kill", "-s", "KILL", "web"}}, []string{"web"}},
		{"rm -f", [][]string{{"docker", "rm", "-f", "web"}}, []string{"web"}},
		{"ExecStart and ExecStop agree", [][]string{
			{"docker", "run", "--name", "web", "img"}, {"docker", "stop", "web"}}, []string{"web"}},
		{"sh -c with quotes", [][]string{{"/bin/sh", "-c", `exec docker run --rm --name "my-app" -e 'X=a b' img; echo done`}}, []string{"my-app"}},
		{"sh -c && chain", [][]string{{"/bin/bash", "-c", `docker rm -f old || true && docker run --name=new img`}}, []string{"old", "new"}},
		{"env prefix", [][]string{{"/usr/bin/env", "DOCKER_HOST=unix:///x", "docker", "run", "--name", "web", "img"}}, []string{"web"}},
		{"unexpanded variable", [][]string{{"docker", "run", "--name", "${NAME}", "img"}}, nil},
		{"not docker", [][]string{{"/usr/bin/podman", "run", "--name", "web", "img"}}, nil},
		{"docker ps names nothing", [][]string{{"docker", "ps", "-a"}}, nil},
		{"no --name", [][]string{{"docker", "run", "--rm", "img"}}, nil},
		{"docker with no args", [][]string{{"docker"}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ContainerNames(tc.commands...); !slices.Equal(got, tc.want) {
				t.Errorf("ContainerNames(%q) = %q, want %q", tc.commands, got, tc.want)
			}
		})
	}
}

func TestSplitShell(t *testing.T) {
	cases := []struct {
		script string
		want   [][]string
	}{
		{`a b  c`, [][]string{{"a", "b", "c"}}},
		{`a 'b c' "d e"`, [][]string{{"a", "b c", "d e"}}},
		{`a "x\"y" 'p\q' r\ s`, [][]string{{"a", `x"y`, `p\q`, "r s"}}},
		{`a;b && c || d | e & f`, [][]string{{"a"}, {"b"}, {"c"}, {"d"}, {"e"}, {"f"}}},
		{"a\nb", [][]string{{"a"}, {"b"}}},
		{`a '' b`, [][]string{{"a", "", "b"}}},
		{`x="a;b" c`, [][]string{{"x=a;b", "c"}}},
		{`unterminated 'quote`, [][]string{{"unterminated", "quote"}}},
		{``, nil},
	}
	for _, tc := range cases {
		got := SplitShell(tc.script)
		if !slices.EqualFunc(got, tc.want, slices.Equal) {
			t.Errorf("SplitShell(%q) = %q, want %q", tc.script, got, tc.want)
		}
	}
}
