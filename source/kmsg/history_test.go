package kmsg

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHistoryFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kmsg")
	other := strings.ReplaceAll(realOOMKillRecord, "docker-"+realContainer+".scope", "docker/"+dockerID)
	log := realDictRecord + realInvoked + realOOMKillRecord + realKilledRecord +
		"6,421,324670839,-;" + realOOMKillPlain + "\n" +
		"garbage\n" +
		other +
		strings.TrimSuffix(realOOMKillRecord, "\n") // unterminated last line
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}

	ev, err := History(path, realContainer)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev) != 2 || !strings.HasSuffix(ev[0].Detail, "; "+strings.TrimSuffix(realKilledRecord[len("3,1475,548363470,-;"):], "\n")) ||
		strings.Contains(ev[1].Detail, "Killed") {
		t.Fatalf("History = %+v", ev)
	}
	if want := bootTime().Add(548363451 * time.Microsecond); ev[0].Time.Sub(want).Abs() > time.Second {
		t.Errorf("time %v, want about %v", ev[0].Time, want)
	}
	if ev, _ := History(path, realContainer[:12]); len(ev) != 2 {
		t.Errorf("short id: %d evidence, want 2", len(ev))
	}
	// Every container's, and the kill outside any container, by pid.
	if ev, _ := History(path, ""); len(ev) != 4 || ev[1].Container != "" || ev[1].Pid != 6009 || ev[2].Container != dockerID {
		t.Errorf("all containers: %+v", ev)
	}
	if ev, _ := History(path, strings.Repeat("0", 64)); len(ev) != 0 {
		t.Errorf("other container: %+v", ev)
	}
	if _, err := History(filepath.Join(t.TempDir(), "missing"), ""); err == nil {
		t.Error("History of a missing file: no error")
	}
}
