package testrig

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SweepCgroups removes the cgroups under parents whose names match
// leftover and that are no container Docker knows (a first submatch, when
// the pattern has one, is a container id to check): what a run of the
// real-host tests that was interrupted left behind.
func SweepCgroups(t testing.TB, leftover *regexp.Regexp, parents ...string) {
	for _, parent := range parents {
		entries, _ := os.ReadDir(parent)
		for _, e := range entries {
			m := leftover.FindStringSubmatch(e.Name())
			if !e.IsDir() || m == nil {
				continue
			}
			if len(m) > 1 && m[1] != "" {
				if _, err := os.Stat(filepath.Join("/var/lib/docker/containers", m[1])); err == nil {
					continue // a real container whose id happens to match
				}
			}
			removeTestCgroup(t, filepath.Join(parent, e.Name()))
		}
	}
}

// removeTestCgroup kills what still runs in a cgroup an interrupted run
// left, then removes it and, first, its child cgroups.
func removeTestCgroup(t testing.TB, dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			removeTestCgroup(t, filepath.Join(dir, e.Name()))
		}
	}
	if procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil {
		for _, f := range strings.Fields(string(procs)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err := syscall.Rmdir(dir)
		if err == nil {
			t.Logf("removed a cgroup an interrupted run left: %s", dir)
			return
		}
		if errors.Is(err, syscall.ENOENT) || time.Now().After(deadline) {
			return
		}
	}
}
