package main

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/exit137-exporter/exit137-exporter/tracker"
)

// TestExplainOffsetsInSeconds: /explain gives each evidence's offset from
// the exit in seconds, with the unit in the field name, and the explain
// command reads it back as the same duration.
func TestExplainOffsetsInSeconds(t *testing.T) {
	tr := storyTracker(t, tracker.Config{Settle: time.Millisecond, Window: 30 * time.Second, Retention: time.Hour},
		strings.Repeat("1", 64), strings.Repeat("2", 64))
	tr.Wait()
	srv := httptest.NewServer(explainHandler(tr))
	defer srv.Close()

	body := httpGet(t, srv)
	if !strings.Contains(body, `"offset_seconds":`) || strings.Contains(body, `"offset":`) {
		t.Fatalf("want offsets as offset_seconds, got:\n%s", body)
	}
	verdicts, err := fetchVerdicts(srv.URL, "", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var offsets, nonZero int
	for _, v := range verdicts {
		for _, c := range v.Evidence {
			offsets++
			if c.Offset != 0 {
				nonZero++
			}
			if got, want := c.Offset, c.Time.Sub(v.Exit.Time); c.Kind != "oom_killed_flag" && got != want {
				t.Errorf("%s %s: offset %v read back, want %v", v.Exit.Name, c.Kind, got, want)
			}
		}
	}
	if offsets == 0 || nonZero == 0 {
		t.Fatalf("the story gave %d offsets, %d non-zero: nothing tested", offsets, nonZero)
	}
	for _, v := range verdicts {
		if v.Exit.Name != "batch" {
			continue
		}
		var out bytes.Buffer
		printVerdict(&out, v)
		if !strings.Contains(out.String(), "  -1.000s  docker") {
			t.Errorf("explain prints offsets in seconds:\n%s", out.String())
		}
	}
}

func httpGet(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + "/explain")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return b.String()
}
