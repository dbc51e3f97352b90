// Command helper is the process the end-to-end tests run inside FROM
// scratch containers: it allocates memory, ignores SIGTERM or exits with
// a code of its own on it, OOM-kills a child, waits for a trigger file,
// sleeps and exits with a chosen code, as each scenario needs.
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

// sigtermSet is printed once SIGTERM is ignored or handled
// (testrig.WaitSigtermSet waits for it).
const sigtermSet = "helper: SIGTERM handling set"

func main() {
	ignoreTerm := flag.Bool("ignore-term", false, "ignore SIGTERM, so that docker stop must SIGKILL")
	termExit := flag.Int("term-exit", -1, "on SIGTERM exit with this code (a graceful stop); -1 leaves SIGTERM alone")
	delay := flag.Duration("delay", 0, "sleep this long before anything else")
	allocWhen := flag.String("alloc-when", "", "wait until this file exists before allocating")
	allocMiB := flag.Int("alloc", 0, "allocate and touch this many MiB")
	childAllocMiB := flag.Int("child-alloc", 0, "run a child that allocates this many MiB (and is OOM-killed under a smaller limit), wait for it, then go on")
	childDelay := flag.Duration("child-delay", 0, "the child sleeps this long before allocating (a long-lived worker OOM-killed later)")
	touch := flag.String("touch", "", "create this file and exit 0 (the trigger for -alloc-when, run with docker exec)")
	sleep := flag.Duration("sleep", 0, "sleep this long before exiting")
	code := flag.Int("exit", -1, "exit with this code after -sleep; -1 sleeps forever")
	flag.Parse()

	if *touch != "" {
		if err := os.WriteFile(*touch, nil, 0o644); err != nil {
			println("touch:", err.Error())
			os.Exit(1)
		}
		return
	}
	if *ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	}
	if *termExit >= 0 {
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		go func() {
			<-term
			println("SIGTERM: exiting with", *termExit)
			os.Exit(*termExit)
		}()
	}
	if *ignoreTerm || *termExit >= 0 {
		// A SIGTERM before this point kills the init with Go's exit 2; a
		// test that stops the container waits for the line.
		println(sigtermSet)
	}
	time.Sleep(*delay)
	if *childAllocMiB > 0 {
		child := exec.Command(os.Args[0], "-delay", childDelay.String(), "-alloc", strconv.Itoa(*childAllocMiB))
		child.Stdout, child.Stderr = os.Stdout, os.Stderr
		err := child.Run()
		println("child ended:", errString(err))
	}
	if *allocWhen != "" {
		for {
			if _, err := os.Stat(*allocWhen); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
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
