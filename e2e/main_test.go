// Package e2e runs the exporter binary against the real Docker daemon and
// kernel: real containers, real OOM kills, real daemon restarts.
package e2e

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testrig.ShortLoop() {
		fmt.Println("e2e: -short leaves out the end-to-end tests (real daemon, real kernel)")
		os.Exit(0)
	}
	code := m.Run()
	// Belt and braces: remove any container this process's tests left.
	if out, err := testrig.Try("docker", "ps", "-aq", "--filter", "label="+testrig.OwnLabel); err == nil && out != "" {
		_, _ = testrig.Try("docker", append([]string{"rm", "-f"}, strings.Fields(out)...)...)
	}
	testrig.RemoveBuilds()
	os.Exit(code)
}

// fastSettle keeps the tests quick; the rules are the same as the default.
var fastSettle = []string{"--attribution.settle=500ms", "--kmsg.path=/dev/kmsg"}

// sigtraceOff keeps a host kill -9 untraced, for the tests of what the
// verdict is without a sender.
const sigtraceOff = "--no-sigtrace.enable"

// exitsOf is the label match of one container name's exits.
func exitsOf(name string, extra ...string) map[string]string {
	m := map[string]string{"name": name}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}
