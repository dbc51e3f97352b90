package bench

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"text/tabwriter"
	"time"
)

// ScrapeStats is a running exporter's /metrics next to the floor, measured
// in turns so that both see the same load.
type ScrapeStats struct {
	Identity, Gzip, Floor Durations
	// Bytes and GzipBytes are the body sizes on the wire.
	Bytes, GzipBytes int64
}

// MeasureScrapes scrapes url rounds times without and with gzip, and
// reads the floor after each pair; one warm-up round is not counted.
func MeasureScrapes(url string, floor []string, rounds int) (ScrapeStats, error) {
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: time.Minute}
	var s ScrapeStats
	for i := -1; i < rounds; i++ {
		plain, n, err := Scrape(client, url, Identity)
		if err != nil {
			return s, err
		}
		zipped, zn, err := Scrape(client, url, Gzip)
		if err != nil {
			return s, err
		}
		start := time.Now()
		if err := ReadFloor(floor); err != nil {
			return s, err
		}
		if i < 0 {
			continue
		}
		s.Identity, s.Gzip, s.Floor = append(s.Identity, plain), append(s.Gzip, zipped), append(s.Floor, time.Since(start))
		s.Bytes, s.GzipBytes = n, zn
	}
	return s, nil
}

// IdleCPU is the CPU time the process spends over d while nobody talks to
// it.
func IdleCPU(pid int, d time.Duration) (time.Duration, error) {
	before, err := ReadProc(pid)
	if err != nil {
		return 0, err
	}
	time.Sleep(d)
	after, err := ReadProc(pid)
	if err != nil {
		return 0, err
	}
	return after.CPU - before.CPU, nil
}

// PerMinute scales a CPU time measured over d to one minute; /proc counts
// in 10 ms ticks, so 0 means less than one tick.
func PerMinute(cpu, d time.Duration) string {
	if cpu == 0 {
		return "< 0.01 s/min (not one 10 ms tick over " + d.String() + ")"
	}
	return fmt.Sprintf("%.2f s/min", cpu.Seconds()*float64(time.Minute)/float64(d))
}

// Table prints aligned rows to stdout, under a title.
type Table struct {
	w *tabwriter.Writer
}

// NewTable starts a table with a title line.
func NewTable(title string) *Table {
	fmt.Fprintf(os.Stdout, "\n%s\n", title)
	return &Table{w: tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)}
}

// Row prints one row; cells are separated by tabs in the output.
func (t *Table) Row(cells ...string) {
	for i, c := range cells {
		if i > 0 {
			io.WriteString(t.w, "\t")
		}
		io.WriteString(t.w, c)
	}
	io.WriteString(t.w, "\n")
}

// Flush writes the table out.
func (t *Table) Flush() { t.w.Flush() }

// X formats a ratio.
func X(r float64) string { return fmt.Sprintf("%.2fx", r) }

// EnvInt reads a positive integer from the environment, or def.
func EnvInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// EnvDuration reads a duration from the environment, or def.
func EnvDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil && d > 0 {
		return d
	}
	return def
}

// EnvString reads a string from the environment, or def.
func EnvString(name, def string) string {
	if s := os.Getenv(name); s != "" {
		return s
	}
	return def
}
