// Command demo is scripts/demo (`make demo`): the newcomer's first five
// minutes. It starts the exporter, Prometheus and Alertmanager on
// 127.0.0.1 with deploy/'s configs, OOM-kills one container and kills
// another by hand, prints the two verdicts and the alerts that fired, and
// removes everything it started. It plays the end-to-end chain test's
// scenario with the same rig (testrig.StartChain, Chain.Play).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

func main() {
	keep := flag.Bool("keep", false, "keep everything running until Ctrl-C, to look around")
	flag.Parse()
	r := testrig.NewRunner("demo")
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		fmt.Println("\ninterrupted: cleaning up")
		r.Exit(130)
	}()
	demo(r, *keep)
	r.Exit(0)
}

func demo(r *testrig.Runner, keep bool) {
	fmt.Println("Building the exporter and the test image, starting the exporter, Prometheus and Alertmanager on 127.0.0.1 ...")
	testrig.Docker(r)
	r.Cleanup(testrig.RemoveBuilds) // the binaries it built are the demo's to remove
	c := testrig.StartChain(r, "--attribution.settle=1s")
	fmt.Printf("  exporter      %s/metrics\n  prometheus    %s/alerts  (rules: alerts/exit137.rules.yml)\n  alertmanager  %s\n\n",
		c.Exporter.URL, c.Prometheus.URL, c.Alertmanager.URL)

	fmt.Println("Three containers: one near its 64 MiB limit, one that allocates 200 MiB under a 32 MiB limit (the kernel OOM-kills it), and one killed with `docker kill` ...")
	s := c.Play(r)
	fmt.Println("Both died with exit code 137. Waiting for Prometheus to raise the alerts in Alertmanager ...")
	c.WaitAlert(r, time.Minute, map[string]string{"alertname": testrig.OOMAlert, "name": s.OOM.Name})
	c.WaitAlert(r, time.Minute, map[string]string{"alertname": testrig.ManualAlert, "name": s.Manual.Name})

	for _, ctr := range []testrig.Container{s.OOM, s.Manual} {
		fmt.Printf("\n$ exit137-exporter explain --exporter.url=%s %s\n%s\n", c.Exporter.URL, ctr.Name, c.Explain(r, ctr.Name))
	}
	fmt.Printf("\nAlerts in Alertmanager (%s/api/v2/alerts):\n", c.Alertmanager.URL)
	for _, a := range c.Alerts(r) {
		fmt.Printf("  %s\n    %s\n", a, a.Annotations["description"])
	}
	for _, sample := range c.Query(r, `instance_name:exit137_container_memory_usage_per_limit:ratio{name="`+s.Steady.Name+`"}`) {
		fmt.Printf("\nMeanwhile %s uses %s of its memory limit (Prometheus: instance_name:exit137_container_memory_usage_per_limit:ratio).\n",
			s.Steady.Name, percent(sample.Value))
	}

	if keep {
		fmt.Println("\nEverything keeps running; press Ctrl-C to clean up.")
		select {}
	}
	fmt.Println("\nCleaning up: the containers, the exporter, Prometheus, Alertmanager and their files.")
}

// percent is an instant query's value, [time, "number"], as a percentage.
func percent(value []any) string {
	if len(value) == 2 {
		if s, ok := value[1].(string); ok {
			if f, err := strconv.ParseFloat(s, 64); err == nil {
				return fmt.Sprintf("%.0f%%", 100*f)
			}
		}
	}
	return "?"
}
