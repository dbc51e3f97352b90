package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

func TestMemoryOfALimitedContainer(t *testing.T) {
	testrig.Docker(t)
	e := testrig.StartExporter(t, fastSettle...)
	name := testrig.UniqueName(t, "mem")
	c := testrig.Start(t, name, []string{"--memory", "64m"}, "-alloc", "8")
	m := e.WaitFor(t, 30*time.Second, "memory series of "+name, func(m testrig.Metrics) bool {
		u, ok := m.Value("exit137_container_memory_usage_bytes", map[string]string{"name": name})
		return ok && u > 8<<20
	})
	sel := map[string]string{"name": name, "id": c.ID[:12], "image": testrig.HelperImage}
	if v, ok := m.Value("exit137_container_memory_limit_bytes", sel); !ok || v != 67108864 {
		t.Errorf("limit = %v (present %v), want 67108864; series %v", v, ok, m.Series("exit137_container_memory_limit_bytes", nil))
	}
	for _, metric := range []string{"exit137_container_memory_working_set_bytes", "exit137_container_memory_max_usage_bytes",
		"exit137_container_memory_limit_hits_total", "exit137_container_oom_kills_total", "exit137_container_info"} {
		if _, ok := m.Value(metric, sel); !ok {
			t.Errorf("%s missing for %s", metric, name)
		}
	}
	if v, _ := m.Value("exit137_source_up", map[string]string{"source": "docker"}); v != 1 {
		t.Errorf("docker source_up = %v, want 1", v)
	}

	unlimited := testrig.UniqueName(t, "nolimit")
	testrig.Start(t, unlimited, nil)
	m = e.WaitFor(t, 30*time.Second, "usage of "+unlimited, func(m testrig.Metrics) bool {
		_, ok := m.Value("exit137_container_memory_usage_bytes", map[string]string{"name": unlimited})
		return ok
	})
	if _, ok := m.Value("exit137_container_memory_limit_bytes", map[string]string{"name": unlimited}); ok {
		t.Errorf("an unlimited container has a limit series")
	}
}

// exitCase is one way to die and how it must be counted.
type exitCase struct {
	name       string
	dockerArgs []string
	helperArgs []string
	then       func(t *testing.T, name string)
	code       string
	signal     string
}

func TestEveryExitCountedOnce(t *testing.T) {
	testrig.Docker(t)
	e := testrig.StartExporter(t, fastSettle...)
	cases := []exitCase{
		{name: "exit0", helperArgs: []string{"-sleep", "300ms", "-exit", "0"}, code: "0", signal: "none"},
		{name: "exit3", helperArgs: []string{"-sleep", "300ms", "-exit", "3"}, code: "3", signal: "none"},
		{name: "kill", then: func(t *testing.T, n string) { testrig.Run(t, "docker", "kill", n) }, code: "137", signal: "SIGKILL"},
		// A Go PID 1 without a SIGTERM handler exits 2 on docker stop.
		{name: "stop", then: func(t *testing.T, n string) { testrig.Run(t, "docker", "stop", n) }, code: "2", signal: "none"},
		{name: "stoptimeout", helperArgs: []string{"-ignore-term"}, then: func(t *testing.T, n string) { testrig.Run(t, "docker", "stop", "-t", "1", n) }, code: "137", signal: "SIGKILL"},
		{name: "oom", dockerArgs: []string{"--memory", "32m", "--memory-swap", "32m"}, helperArgs: []string{"-alloc", "200"}, code: "137", signal: "SIGKILL"},
		{name: "rm", dockerArgs: []string{"--rm"}, helperArgs: []string{"-sleep", "300ms", "-exit", "5"}, code: "5", signal: "none"},
	}
	names := map[string]string{}
	for _, tc := range cases {
		names[tc.name] = testrig.UniqueName(t, tc.name)
		testrig.Start(t, names[tc.name], tc.dockerArgs, tc.helperArgs...)
	}
	time.Sleep(time.Second) // let every container get going
	for _, tc := range cases {
		if tc.then != nil {
			tc.then(t, names[tc.name])
		}
	}
	want := map[string]float64{} // exit code → host total
	for _, tc := range cases {
		want[tc.code]++
	}
	m := e.WaitFor(t, 60*time.Second, "every exit counted", func(m testrig.Metrics) bool {
		for _, tc := range cases {
			if m.Sum("exit137_container_exits_total", exitsOf(names[tc.name])) < 1 {
				return false
			}
		}
		return true
	})
	time.Sleep(2 * time.Second) // a second count would show up by now
	m = e.Scrape(t)
	for _, tc := range cases {
		n := names[tc.name]
		if got := m.Sum("exit137_container_exits_total", exitsOf(n)); got != 1 {
			t.Errorf("%s: %v exits counted, want 1: %v", tc.name, got, m.Series("exit137_container_exits_total", exitsOf(n)))
		}
		if got := m.Sum("exit137_container_exits_total", exitsOf(n, "exit_code", tc.code, "signal", tc.signal)); got != 1 {
			t.Errorf("%s: want exit_code=%s signal=%s counted once: %v", tc.name, tc.code, tc.signal, m.Series("exit137_container_exits_total", exitsOf(n)))
		}
	}
	for code, n := range want {
		if got := m.Sum("exit137_exits_total", map[string]string{"exit_code": code}); got != n {
			t.Errorf("host total for exit_code %s = %v, want %v: %v", code, got, n, m.Series("exit137_exits_total", nil))
		}
	}
	for _, tc := range cases {
		if tc.name == "rm" {
			continue // removed: no last-exit gauge
		}
		if v, ok := m.Value("exit137_container_last_exit_code", map[string]string{"name": names[tc.name]}); !ok || fmt.Sprint(v) != tc.code {
			t.Errorf("%s: last_exit_code = %v (present %v), want %s", tc.name, v, ok, tc.code)
		}
	}
}

func TestBurstOfFiftyKills(t *testing.T) {
	testrig.Docker(t)
	e := testrig.StartExporter(t, fastSettle...)
	const n = 50
	names := make([]string, n)
	for i := range names {
		names[i] = testrig.UniqueName(t, fmt.Sprintf("burst%02d", i))
		testrig.Start(t, names[i], nil)
	}
	testrig.Run(t, "docker", append([]string{"kill"}, names...)...)
	kills := map[string]string{"exit_code": "137"}
	e.WaitFor(t, 60*time.Second, "50 kills counted", func(m testrig.Metrics) bool {
		return m.Sum("exit137_exits_total", kills) >= n
	})
	time.Sleep(2 * time.Second)
	m := e.Scrape(t)
	if got := m.Sum("exit137_exits_total", kills); got != n {
		t.Fatalf("host total of 137s = %v, want exactly %d", got, n)
	}
	for _, name := range names {
		if got := m.Sum("exit137_container_exits_total", exitsOf(name)); got != 1 {
			t.Errorf("%s counted %v times", name, got)
		}
	}
}

func TestExitsBeforeStartAreNotNew(t *testing.T) {
	testrig.Docker(t)
	name := testrig.UniqueName(t, "before")
	testrig.Start(t, name, nil, "-exit", "7")
	testrig.WaitExited(t, name, 30*time.Second)
	e := testrig.StartExporter(t, fastSettle...)
	m := e.WaitFor(t, 30*time.Second, "docker source up", func(m testrig.Metrics) bool {
		v, _ := m.Value("exit137_source_up", map[string]string{"source": "docker"})
		return v == 1
	})
	time.Sleep(time.Second)
	m = e.Scrape(t)
	if got := m.Sum("exit137_container_exits_total", exitsOf(name)); got != 0 {
		t.Errorf("an exit from before the exporter started was counted: %v", m.Series("exit137_container_exits_total", exitsOf(name)))
	}
	if v, ok := m.Value("exit137_container_last_exit_code", map[string]string{"name": name}); !ok || v != 7 {
		t.Errorf("last_exit_code = %v (present %v), want 7", v, ok)
	}
	if !strings.Contains(e.Get(t, "/"), "/explain") {
		t.Errorf("landing page does not link /explain")
	}
}
