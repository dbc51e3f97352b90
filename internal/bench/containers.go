package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// Label marks every container a benchmark starts, with the run's id as
// its value; scripts/bench removes what a killed run left by it.
const Label = "exit137.bench"

// workers is how many Docker API calls run at once: enough to keep
// dockerd busy on two cores without queueing hundreds of requests.
const workers = 8

// Containers are the real containers of one benchmark run.
type Containers struct {
	Client *client.Client
	// Run is the value of Label on this run's containers.
	Run string
	// IDs and Names are in start order.
	IDs, Names []string
	// Stopped says why fewer started than asked for (the host ran short,
	// or the start phase ran out of time); "" when all started.
	Stopped string
	Took    time.Duration
}

// DockerClient connects to the daemon testrig uses.
func DockerClient(tb testing.TB) *client.Client {
	tb.Helper()
	c, err := client.NewClientWithOpts(client.WithHost("unix://"+testrig.DockerSocket()), client.WithAPIVersionNegotiation())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// StartContainers runs n sleeping helper containers (testrig's image,
// --memory, --network none, labelled) in parallel through the Docker API,
// and removes every one of them when the benchmark ends, even on failure.
// They do not carry testrig.TestLabel: the e2e tests' sweep of that label
// does not hold the daemon lock and would remove them mid-run.
// It stops early and says why when within passes or the host runs short
// of memory or pids; the caller measures what started.
func StartContainers(tb testing.TB, n int, memory int64, within time.Duration) *Containers {
	tb.Helper()
	cs := &Containers{Client: DockerClient(tb)}
	prefix := testrig.UniqueName(tb, "bench")
	run := strings.TrimPrefix(prefix, "e137-bench-")
	cs.Run = run
	tb.Cleanup(func() { RemoveRun(tb, cs.Client, run) })
	TellScript(tb, "run", run)

	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	begin := time.Now()
	var mu sync.Mutex
	var stopped atomic.Value
	Parallel(n, workers, func(i int) {
		if stopped.Load() != nil {
			return
		}
		if why := hostShort(); why != "" {
			stopped.CompareAndSwap(nil, why)
			return
		}
		name := fmt.Sprintf("%s-%04d", prefix, i)
		id, err := startOne(ctx, cs.Client, name, run, memory)
		if err != nil {
			stopped.CompareAndSwap(nil, fmt.Sprintf("starting %s: %v", name, err))
			return
		}
		mu.Lock()
		defer mu.Unlock()
		cs.IDs, cs.Names = append(cs.IDs, id), append(cs.Names, name)
		if len(cs.IDs)%50 == 0 {
			fmt.Fprintf(os.Stderr, "bench: %d/%d containers started (%s)\n", len(cs.IDs), n, time.Since(begin).Round(time.Second))
		}
	})
	cs.Took = time.Since(begin)
	if why, ok := stopped.Load().(string); ok {
		cs.Stopped = why
		fmt.Fprintf(os.Stderr, "bench: stopped at %d/%d containers: %s\n", len(cs.IDs), n, why)
	}
	if len(cs.IDs) == 0 {
		tb.Fatalf("no container started: %s", cs.Stopped)
	}
	return cs
}

func startOne(ctx context.Context, c *client.Client, name, run string, memory int64) (string, error) {
	resp, err := c.ContainerCreate(ctx,
		&container.Config{Image: testrig.HelperImage, Labels: map[string]string{Label: run}},
		&container.HostConfig{NetworkMode: "none", Resources: container.Resources{Memory: memory}},
		nil, nil, name)
	if err != nil {
		return "", err
	}
	return resp.ID, c.ContainerStart(ctx, resp.ID, container.StartOptions{})
}

// TellScript leaves a value in scripts/bench's state directory
// (EXIT137_BENCH_STATE), for its clean-up after a run that was killed.
func TellScript(tb testing.TB, name, value string) {
	dir := os.Getenv("EXIT137_BENCH_STATE")
	if dir == "" {
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(value+"\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// RemoveRun removes every container of the run, a few at a time.
func RemoveRun(tb testing.TB, c *client.Client, run string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	list, err := c.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", Label+"="+run))})
	if err != nil {
		tb.Errorf("listing the benchmark's containers for removal: %v", err)
		return
	}
	Parallel(len(list), workers, func(i int) {
		if err := c.ContainerRemove(ctx, list[i].ID, container.RemoveOptions{Force: true}); err != nil && !client.IsErrNotFound(err) {
			tb.Errorf("removing %s: %v", list[i].ID[:12], err)
		}
	})
}

// Parallel calls f(0) … f(n-1) from k goroutines at once.
func Parallel(n, k int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(k, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				f(i)
			}
		}()
	}
	wg.Wait()
}

// hostShort says why no more containers should start: the two-core test
// hosts run out of pids or memory long before dockerd says so.
func hostShort() string {
	if avail := meminfo("MemAvailable"); avail > 0 && avail < 2<<30 {
		return fmt.Sprintf("only %s of memory available", MB(avail))
	}
	max, _ := os.ReadFile("/proc/sys/kernel/pid_max")
	load, _ := os.ReadFile("/proc/loadavg") // "0.1 0.2 0.3 running/total last"
	if f := strings.Fields(string(load)); len(f) >= 4 {
		_, total, _ := strings.Cut(f[3], "/")
		t, _ := strconv.Atoi(total)
		m, _ := strconv.Atoi(strings.TrimSpace(string(max)))
		if m > 0 && t > m*8/10 {
			return fmt.Sprintf("%d of %d pids in use", t, m)
		}
	}
	return ""
}

func meminfo(key string) int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && k == key {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
