package tracker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/exit137-exporter/exit137-exporter/cgroupfs"
)

// The state that survives the exporter: the ledger, the event cursor and
// the exit counters, saved together in one snapshot. After a restart the
// exporter replays the daemon's events from the cursor and reconciles
// against the ledger, so exits that happened while it was down are counted
// once, and none it had counted is counted again; its counters go on from
// where they stood, so an exit counted just before a stop, which no scrape
// saw yet, is not lost to Prometheus either.

// stateVersion is bumped when the file's meaning changes; a file of
// another version is ignored (a fresh start), never misread.
const stateVersion = 1

// maxStateEntries bounds the file: live containers first, then the most
// recent tombstones.
const maxStateEntries = 20000

type stateFile struct {
	Version int       `json:"version"`
	Saved   time.Time `json:"saved"`
	// Cursor is where the next subscription replays from: the latest
	// event handled, or earlier while an exit still awaited its verdict.
	Cursor  time.Time         `json:"cursor"`
	Entries map[string]*entry `json:"entries"`
	// Exits are the per-name counter sets, Host the host totals.
	Exits []savedSet     `json:"exits,omitempty"`
	Host  []savedCounter `json:"host,omitempty"`
}

// savedSet is one (name, image) set of exit counters.
type savedSet struct {
	Name  string `json:"name"`
	Image string `json:"image"`
	Kube
	Counters []savedCounter `json:"counters"`
}

type savedCounter struct {
	ExitKey
	N uint64 `json:"n"`
}

func saveCounters(m map[ExitKey]uint64) []savedCounter {
	out := make([]savedCounter, 0, len(m))
	for k, n := range m {
		if n > 0 {
			out = append(out, savedCounter{ExitKey: k, N: n})
		}
	}
	return out
}

// snapshot copies the ledger for saving. A run whose exit is counted but
// not yet decided is saved as still running, and the cursor is put before
// its death: a crash before the verdict makes the next start count it.
func (t *Tracker) snapshot() stateFile {
	t.mu.Lock()
	defer t.mu.Unlock()
	cursor := t.replayFrom()
	open := map[*run]bool{}
	for r, p := range t.pending {
		if !p.decided {
			open[r] = true
		}
	}
	copyRun := func(r *run) *run {
		if r == nil {
			return nil
		}
		c := *r
		if open[r] {
			c.Ended, c.DieEvent = false, time.Time{}
		}
		return &c
	}
	entries := make(map[string]*entry, len(t.ledger.entries))
	for id, e := range t.ledger.entries {
		c := &entry{Latest: copyRun(e.Latest), Prev: copyRun(e.Prev), Removed: e.Removed}
		if open[e.Latest] {
			c.Removed = time.Time{} // found gone on the next reconcile: counted then
		}
		for _, b := range e.Between {
			if !open[b] { // a run between still settling is left out: the replay counts it
				c.Between = append(c.Between, copyRun(b))
			}
		}
		entries[id] = c
	}
	trimTombstones(entries, maxStateEntries)
	state := stateFile{Version: stateVersion, Saved: t.now(), Cursor: cursor, Entries: entries, Host: saveCounters(t.exits.host)}
	for k, set := range t.exits.byName {
		if counters := saveCounters(set.counts); len(counters) > 0 {
			state.Exits = append(state.Exits, savedSet{Name: k.name, Image: k.image, Kube: set.kube, Counters: counters})
		}
	}
	return state
}

// replayFrom is where a replay starts, in the saved state's cursor: the
// latest event handled (the horizon before any), or the death of an exit
// still awaiting its verdict, which a crash must not lose. Callers hold mu.
func (t *Tracker) replayFrom() time.Time {
	cursor := t.ledger.lastEvent
	if cursor.IsZero() {
		cursor = t.ledger.horizon
	}
	for _, p := range t.pending {
		if !p.decided && p.exit.Time.Before(cursor) {
			cursor = p.exit.Time
		}
	}
	return cursor
}

// trimTombstones drops the oldest tombstones until at most n entries stay.
func trimTombstones(entries map[string]*entry, n int) {
	if len(entries) <= n {
		return
	}
	var dead []string
	for id, e := range entries {
		if !e.Removed.IsZero() {
			dead = append(dead, id)
		}
	}
	sort.Slice(dead, func(i, j int) bool { return entries[dead[i]].Removed.Before(entries[dead[j]].Removed) })
	for _, id := range dead {
		if len(entries) <= n {
			return
		}
		delete(entries, id)
	}
}

// SaveState writes the ledger to path atomically (a temporary file in the
// same directory, synced, then renamed over the old one), unless nothing
// changed since the last save.
func (t *Tracker) SaveState(path string) error {
	t.mu.Lock()
	changed := t.changed
	t.mu.Unlock()
	if changed == t.saved {
		return nil
	}
	if err := t.writeState(path); err != nil {
		return err
	}
	t.saved = changed
	return nil
}

func (t *Tracker) writeState(path string) error {
	data, err := json.Marshal(t.snapshot())
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ErrNoState is returned by LoadState when there is no state file yet.
var ErrNoState = errors.New("no saved state")

// LoadState restores the ledger and the cursor saved at path; it is called
// before any source runs. A missing file is ErrNoState; an unreadable,
// corrupt or foreign one is an error that says why. Either way the
// tracker is left as new: a fresh start, never a half-read ledger.
func (t *Tracker) LoadState(path string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNoState
	}
	if err != nil {
		return err
	}
	var s stateFile
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("state file %s is corrupt: %w", path, err)
	}
	if s.Version != stateVersion {
		return fmt.Errorf("state file %s has version %d, this exporter reads %d", path, s.Version, stateVersion)
	}
	if s.Cursor.IsZero() || s.Cursor.After(t.now()) {
		return fmt.Errorf("state file %s has an unusable cursor %v", path, s.Cursor)
	}
	for id, e := range s.Entries {
		if e == nil || !cgroupfs.IsContainerID(id) {
			return fmt.Errorf("state file %s has a bad entry %q", path, id)
		}
	}
	for _, set := range s.Exits {
		if set.Name == "" {
			return fmt.Errorf("state file %s has a counter set without a name", path)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range s.Host {
		t.exits.host[c.ExitKey] = c.N
	}
	for _, set := range s.Exits {
		t.exits.hold(set.Name, set.Image, set.Kube)
		// Its retention starts again: whether its container still exists
		// is known only at the first reconcile, after the first scrapes.
		series := t.exits.byName[nameKey{set.Name, set.Image}]
		for _, c := range set.Counters {
			series.counts[c.ExitKey] = c.N
		}
	}
	t.ledger.entries = s.Entries
	t.ledger.lastEvent = s.Cursor
	t.ledger.horizon = s.Cursor
	return nil
}
