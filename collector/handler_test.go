package collector_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"

	"github.com/exit137-exporter/exit137-exporter/cgroupfs"
	"github.com/exit137-exporter/exit137-exporter/collector"
	"github.com/exit137-exporter/exit137-exporter/internal/bench"
	"github.com/exit137-exporter/exit137-exporter/source"
	"github.com/exit137-exporter/exit137-exporter/tracker"
)

// scrapeDuration lines change from scrape to scrape.
var scrapeDuration = regexp.MustCompile(`(?m)^exit137_scrape_collector_duration_seconds\{.*\n`)

// TestHandlerMatchesRegistry: the handler that writes the per-container
// families itself serves what promhttp over a registry of the same
// collectors serves, in text (plain and gzip) and protobuf, over a
// generated host with names, compose labels, past exits and a container
// name that needs escaping.
func TestHandlerMatchesRegistry(t *testing.T) {
	for _, mode := range []cgroupfs.Mode{cgroupfs.ModeLegacy, cgroupfs.ModeUnified} {
		deps, ids := seededDeps(t, mode)
		deps.Tracker.Upsert(tracker.Meta{ID: ids[3], Name: "odd\"name\\with\nbreaks", Image: "img"})
		// Without the Go and process collectors: they change between
		// scrapes. RegistryHandler gives the --collector flags their
		// defaults.
		ref, err := bench.RegistryHandler(deps, false)
		if err != nil {
			t.Fatal(err)
		}
		streamed, err := collector.Handler(deps, false, 0)
		if err != nil {
			t.Fatal(err)
		}
		scrape(t, ref, "", "") // the memory collector sets the cgroupfs source up
		for _, enc := range []string{"", "gzip"} {
			want := scrape(t, ref, "", enc)
			got := scrape(t, streamed, "", enc)
			if !bytes.Equal(got, want) {
				t.Errorf("%s, Accept-Encoding %q: text differs from the registry's:\n--- got\n%s\n--- want\n%s", mode, enc, got, want)
			}
		}
		protoAccept := `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited`
		if got, want := families(t, scrape(t, streamed, protoAccept, "")), families(t, scrape(t, ref, protoAccept, "")); len(got) != len(want) {
			t.Errorf("%s protobuf: %d families, want %d", mode, len(got), len(want))
		} else {
			for i := range want {
				if !proto.Equal(got[i], want[i]) {
					t.Errorf("%s protobuf: family %s differs:\n%v\nwant\n%v", mode, want[i].GetName(), got[i], want[i])
				}
			}
		}
	}
}

// TestGzipScrapesAtOnce: scrapes that overlap each compress what they
// serve, as a plain scrape serves it.
func TestGzipScrapesAtOnce(t *testing.T) {
	deps, _ := seededDeps(t, cgroupfs.ModeUnified)
	h, err := collector.Handler(deps, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	scrape(t, h, "", "") // the memory collector sets the cgroupfs source up
	want := scrape(t, h, "", "")
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				got, err := fetch(h, "", "gzip")
				if err != nil {
					t.Error(err)
					return
				}
				if !bytes.Equal(got, want) {
					t.Errorf("a gzip scrape among others served %d bytes unlike the plain scrape's %d", len(got), len(want))
				}
			}
		}()
	}
	wg.Wait()
}

// scrape returns a handler's body, decompressed, without the scrape
// durations.
func scrape(t *testing.T, h http.Handler, accept, encoding string) []byte {
	t.Helper()
	body, err := fetch(h, accept, encoding)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// fetch is scrape for any goroutine: the body, or what was wrong with the
// response (its status, Content-Encoding, Content-Type or gzip stream).
func fetch(h http.Handler, accept, encoding string) ([]byte, error) {
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if encoding != "" {
		req.Header.Set("Accept-Encoding", encoding)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return nil, fmt.Errorf("status %d: %s", rec.Code, rec.Body)
	}
	if got := rec.Header().Get("Content-Encoding"); got != encoding {
		return nil, fmt.Errorf("Accept-Encoding %q: Content-Encoding %q", encoding, got)
	}
	if want := string(expfmt.Negotiate(req.Header)); rec.Header().Get("Content-Type") != want {
		return nil, fmt.Errorf("Accept %q: Content-Type %q, want %q", accept, rec.Header().Get("Content-Type"), want)
	}
	body := rec.Body.Bytes()
	if encoding == "gzip" {
		r, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		if body, err = io.ReadAll(r); err != nil {
			return nil, err
		}
	}
	return scrapeDuration.ReplaceAll(body, nil), nil
}

// seededDeps is a handler's dependencies over a generated tree of 30
// containers that the tracker knows by name, with past exits; it returns
// their ids.
func seededDeps(t *testing.T, mode cgroupfs.Mode) (collector.Deps, []string) {
	t.Helper()
	tree, err := bench.NewTree(t.TempDir(), mode, 30)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	tr := tracker.New(tracker.Config{Settle: time.Second, Window: 30 * time.Second, Retention: time.Hour}, logger)
	bench.Seed(tr, tree.IDs, time.Now())
	return collector.Deps{Logger: logger, Sources: source.NewRegistry(), Tracker: tr, Cgroups: &tree.FS}, tree.IDs
}

// families decodes a delimited protobuf body, without the scrape
// durations.
func families(t *testing.T, body []byte) []*dto.MetricFamily {
	t.Helper()
	var out []*dto.MetricFamily
	r := bytes.NewReader(body)
	for r.Len() > 0 {
		mf := &dto.MetricFamily{}
		if err := protodelim.UnmarshalFrom(r, mf); err != nil {
			t.Fatal(err)
		}
		if mf.GetName() != "exit137_scrape_collector_duration_seconds" {
			out = append(out, mf)
		}
	}
	return out
}

// TestAcceptsGzip: gzip exactly when promhttp would choose it.
func TestAcceptsGzip(t *testing.T) {
	for header, gz := range map[string]bool{
		"": false, "gzip": true, "GZIP": true, "gzip;q=0": false, "deflate, gzip;q=0.5": true, "*": false,
		"identity;q=0.5, gzip": true, "gzip, identity": false, "br": false, "*;q=0.5, identity;q=0": true,
	} {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if header != "" {
			req.Header.Set("Accept-Encoding", header)
		}
		rec := httptest.NewRecorder()
		h, err := collector.Handler(collector.Deps{Logger: slog.New(slog.DiscardHandler), Sources: source.NewRegistry(),
			Tracker: tracker.New(tracker.Config{}, slog.New(slog.DiscardHandler))}, false, 0)
		if err != nil {
			t.Fatal(err)
		}
		h.ServeHTTP(rec, req)
		if got := rec.Header().Get("Content-Encoding") == "gzip"; got != gz {
			t.Errorf("Accept-Encoding %q: gzip %v, want %v", header, got, gz)
		}
	}
}
