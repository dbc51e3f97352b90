// Command helper is the process the end-to-end tests run inside FROM
// scratch containers: it allocates memory, ignores SIGTERM, OOM-kills a
// child, sleeps and exits with a chosen code, as each scenario needs.
package main

import (
	"flag"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	ignoreTerm := flag.Bool("ignore-term", false, "ignore SIGTERM, so that docker stop must SIGKILL")
	allocMiB := flag.Int("alloc", 0, "allocate and touch this many MiB")
	childAllocMiB := flag.Int("child-alloc", 0, "run a child that allocates this many MiB (and is OOM-killed under a smaller limit), then go on")
	sleep := flag.Duration("sleep", 0, "sleep this long before exiting")
	code := flag.Int("exit", -1, "exit with this code after -sleep; -1 sleeps forever")
	flag.Parse()

	if *ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	}
	if *childAllocMiB > 0 {
		child := exec.Command(os.Args[0], "-alloc", strconv.Itoa(*childAllocMiB))
		child.Stdout, child.Stderr = os.Stdout, os.Stderr
		err := child.Run()
		println("child ended:", errString(err))
	}
	if *allocMiB > 0 {
		hold := make([][]byte, 0, *allocMiB)
		for i := 0; i < *allocMiB; i++ {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1
			}
			hold = append(hold, b)
		}
		println("allocated MiB:", len(hold))
		if *code < 0 && *sleep == 0 {
			sleepForever()
		}
	}
	time.Sleep(*sleep)
	if *code < 0 {
		sleepForever()
	}
	os.Exit(*code)
}

// sleepForever blocks without tripping the runtime's deadlock detector,
// which a bare select{} in a lone goroutine would.
func sleepForever() {
	for {
		time.Sleep(time.Hour)
	}
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}
