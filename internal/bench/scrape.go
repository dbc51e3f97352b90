package bench

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"time"
)

// The headers Prometheus 2.x sends on a scrape; promhttp answers them
// with the text format.
const (
	promAccept = "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4," +
		"text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
	// Gzip is the Accept-Encoding of a Prometheus scrape; Identity is
	// curl's, without compression.
	Gzip     = "gzip"
	Identity = "identity"
)

// ScrapeRequest is a /metrics request as Prometheus makes it, with the
// given Accept-Encoding.
func ScrapeRequest(url, encoding string) *http.Request {
	req := httptest.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", promAccept)
	req.Header.Set("Accept-Encoding", encoding)
	return req
}

// Discard is a ResponseWriter that drops the body and counts its bytes,
// for serving a handler in-process.
type Discard struct {
	header http.Header
	Bytes  int
	Status int
}

func (d *Discard) Header() http.Header {
	if d.header == nil {
		d.header = http.Header{}
	}
	return d.header
}

func (d *Discard) Write(p []byte) (int, error) { d.Bytes += len(p); return len(p), nil }

func (d *Discard) WriteHeader(status int) { d.Status = status }

// Reset readies the writer for the next response, keeping its header map.
func (d *Discard) Reset() {
	clear(d.header)
	d.Bytes, d.Status = 0, 0
}

// Scrape fetches url over HTTP as Prometheus would and returns the wall
// time until the body is read, and the body's size on the wire.
func Scrape(client *http.Client, url, encoding string) (time.Duration, int64, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Accept", promAccept)
	req.Header.Set("Accept-Encoding", encoding)
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	elapsed := time.Since(start)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return elapsed, n, err
}

// Durations are repeated measurements of one thing.
type Durations []time.Duration

// Quantile returns the q-quantile (0 ≤ q ≤ 1, nearest rank) or 0 for no
// measurements.
func (d Durations) Quantile(q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(q*float64(len(s)-1) + 0.5)
	return s[i]
}

// Min, Median and Max are the usual quantiles.
func (d Durations) Min() time.Duration    { return d.Quantile(0) }
func (d Durations) Median() time.Duration { return d.Quantile(0.5) }
func (d Durations) Max() time.Duration    { return d.Quantile(1) }

// String is "min / median / max" in milliseconds.
func (d Durations) String() string {
	return fmt.Sprintf("%s / %s / %s", ms(d.Min()), ms(d.Median()), ms(d.Max()))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// Ratio is a/b, 0 when b is 0.
func Ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
