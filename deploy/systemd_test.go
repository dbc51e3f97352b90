package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// unitForbidden are directives the exporter's unit must not have, and why.
var unitForbidden = map[string]string{
	"PartOf":            "a stop or restart of that unit would stop the exporter, which must see it",
	"BindsTo":           "the exporter would die with the unit it watches",
	"Requires":          "the exporter would be stopped with the required unit",
	"Requisite":         "the exporter could not start without the unit",
	"PrivateDevices":    "it hides /dev/kmsg",
	"ProtectKernelLogs": "it denies /dev/kmsg",
}

// TestSystemdUnit verifies exit137-exporter.service, alone and with the
// unprivileged drop-in, with `systemd-analyze verify` (every warning
// fails) in a scratch root where the binary exists, and checks its
// dependencies and ExecStart's flags.
func TestSystemdUnit(t *testing.T) {
	dir := filepath.Join(testrig.RepoRoot(), "deploy")
	unit := readUnit(t, filepath.Join(dir, "exit137-exporter.service"))
	dropIn := readUnit(t, filepath.Join(dir, "exit137-exporter-unprivileged.conf"))
	for name, why := range unitForbidden {
		for file, directives := range map[string]map[string]string{"the unit": unit, "the drop-in": dropIn} {
			if v, ok := directives[name]; ok {
				t.Errorf("%s: %s=%s: %s", file, name, v, why)
			}
		}
	}
	binary := strings.Fields(unit["ExecStart"])
	if len(binary) == 0 {
		t.Fatal("no ExecStart")
	}
	for file, execStart := range map[string]string{"the unit": unit["ExecStart"], "the drop-in": dropIn["ExecStart"]} {
		args := strings.Fields(execStart)
		if len(args) == 0 || args[0] != binary[0] {
			t.Errorf("%s runs %q, want %s", file, execStart, binary[0])
			continue
		}
		checkExporterFlags(t, file, args[1:])
	}

	need(t, "systemd-analyze", "systemd")
	root := t.TempDir()
	install(t, testrig.BuildBinary(t, "cmd/exit137-exporter"), filepath.Join(root, binary[0]), 0o755)
	units, err := filepath.Glob("/lib/systemd/system/*.target") // what it orders itself after, the defaults
	if err != nil || len(units) == 0 {
		testrig.Need(t, "no systemd targets in /lib/systemd/system (%v)", err)
	}
	for _, u := range units {
		install(t, u, filepath.Join(root, u), 0o644)
	}
	const installed = "/etc/systemd/system/exit137-exporter.service"
	install(t, filepath.Join(dir, "exit137-exporter.service"), filepath.Join(root, installed), 0o644)
	verify(t, root, installed)
	install(t, filepath.Join(dir, "exit137-exporter-unprivileged.conf"), filepath.Join(root, installed+".d", "unprivileged.conf"), 0o644)
	verify(t, root, installed)
}

func verify(t *testing.T, root, unit string) {
	t.Helper()
	out, err := exec.Command("systemd-analyze", "verify", "--man=no", "--root="+root, unit).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func install(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}

// readUnit returns a unit file's directives (the last value of each).
func readUnit(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
