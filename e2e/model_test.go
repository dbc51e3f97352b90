package e2e

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

// The model-based test of issue 10: random sequences of what happens to
// containers, to the exporter's connection, to the exporter and to the
// daemon, each checked against a witness that follows the real daemon's
// events on its own connection. Flags (after -args, or on go test for
// this package alone):
//
//	-model.seed=S        base seed; sequence i runs seed S+i (0: from the clock)
//	-model.sequences=N   sequences to run (the CI set is short)
//	-model.ops=N         operations per sequence
//	-model.soak=X        the soak: X sequences (a number) or for X (a
//	                     duration, e.g. 30m); EXIT137_SOAK sets it too
//	-model.dockerd=M     dockerd restarts: auto (in the soak only), on, off
//	-model.stateless     no --state.path and no exporter restarts (for a
//	                     binary without the flag)
//
// Replay one sequence: -run TestModelExactlyOnce -args -model.seed=S
// -model.sequences=1, with S the seed the failure printed.
var (
	modelSeed      = flag.Int64("model.seed", 0, "base seed of the model test; sequence i uses seed+i (0: from the clock)")
	modelSequences = flag.Int("model.sequences", 4, "sequences the model test runs")
	modelOps       = flag.Int("model.ops", 22, "operations per sequence")
	modelSoak      = flag.String("model.soak", os.Getenv("EXIT137_SOAK"), "soak: a number of sequences or a duration (env EXIT137_SOAK)")
	modelDockerd   = flag.String("model.dockerd", "auto", "dockerd restarts in the model: auto (soak only), on, off")
	modelStateless = flag.Bool("model.stateless", false, "run the model without --state.path and without exporter restarts")
)

// modelConfig is what the flags ask for.
type modelConfig struct {
	seed      int64
	sequences int           // 0 with a duration
	duration  time.Duration // the soak's length, 0 for a count
	ops       int
	dockerd   bool
	stateless bool
	soak      bool
}

func modelConfigFromFlags(t *testing.T) modelConfig {
	t.Helper()
	cfg := modelConfig{seed: *modelSeed, sequences: *modelSequences, ops: *modelOps, stateless: *modelStateless}
	if cfg.seed == 0 {
		cfg.seed = time.Now().UnixNano() % 1_000_000_000
	}
	if soak := strings.TrimSpace(*modelSoak); soak != "" {
		cfg.soak = true
		if n, err := strconv.Atoi(soak); err == nil {
			cfg.sequences = n
		} else if d, err := time.ParseDuration(soak); err == nil {
			cfg.sequences, cfg.duration = 0, d
		} else {
			t.Fatalf("-model.soak / EXIT137_SOAK = %q: want a number of sequences or a duration", soak)
		}
		if !flagSet("model.ops") {
			cfg.ops = 40
		}
	}
	switch *modelDockerd {
	case "on":
		cfg.dockerd = true
	case "auto":
		cfg.dockerd = cfg.soak
	case "off":
	default:
		t.Fatalf("-model.dockerd=%q: want auto, on or off", *modelDockerd)
	}
	if cfg.dockerd {
		if _, err := testrig.Try(testrig.RepoRoot()+"/scripts/dockerd.sh", "owned"); err != nil {
			t.Logf("model: the daemon was not started by scripts/dockerd.sh, so no dockerd restarts")
			cfg.dockerd = false
		}
	}
	return cfg
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// TestModelExactlyOnce runs random sequences against the real daemon and
// checks, after each, that every container name's exits were counted as
// many times as the witness saw it die, with the codes it saw, and that
// the host-wide counter rose by the witness's total.
func TestModelExactlyOnce(t *testing.T) {
	testrig.Docker(t)
	cfg := modelConfigFromFlags(t)
	if !cfg.stateless {
		requireStatePath(t)
	}
	w := testrig.NewWitness(t)
	t.Logf("model: base seed %d, %d sequences, %v soak, %d ops each, dockerd restarts %v, stateless %v (replay a sequence: -model.seed=<its seed> -model.sequences=1)",
		cfg.seed, cfg.sequences, cfg.duration, cfg.ops, cfg.dockerd, cfg.stateless)
	began := time.Now()
	var seqs, ops, failed int
	var failedSeeds []int64
	for i := 0; ; i++ {
		if cfg.duration > 0 && time.Since(began) >= cfg.duration || cfg.duration == 0 && i >= cfg.sequences {
			break
		}
		seed := cfg.seed + int64(i)
		var n int
		ok := t.Run(fmt.Sprintf("seq%03d/seed=%d", i, seed), func(t *testing.T) {
			n = runSequence(t, w, seed, cfg)
		})
		seqs++
		ops += n
		if !ok {
			failed++
			failedSeeds = append(failedSeeds, seed)
			if !cfg.soak {
				break
			}
		}
	}
	t.Logf("model: %d sequences, %d operations in %s; %d failed (seeds %v)", seqs, ops, time.Since(began).Round(time.Second), failed, failedSeeds)
}

// requireStatePath fails the test when the binary has no --state.path.
func requireStatePath(t *testing.T) {
	t.Helper()
	out, _ := testrig.Try(testrig.BuildBinary(t, "cmd/exit137-exporter"), "serve", "--help")
	if !strings.Contains(out, "--state.path") {
		t.Fatalf("the exporter has no --state.path flag, so exits while it is down cannot be counted (issue 10); " +
			"-model.stateless runs the model without it and without exporter restarts")
	}
}

// mContainer is what the model knows of a container it made.
type mContainer struct {
	name       string
	policy     string // "", "on-failure:N" or "always"
	autoRemove bool
	forever    bool // the helper never exits by itself
	removed    bool
	manual     bool // started or restarted by hand (RestartCount no longer counts its starts)
}

// incarnation is the exporter's counts of a sequence's names: per name
// and exit code, and the host total (less the base it had when the
// sequence began). Its counters outlive its restarts.
type incarnation struct {
	byName map[string]map[string]float64
	host   float64
}

// sequence is one run of the model.
type sequence struct {
	t        *testing.T
	r        *rand.Rand
	w        *testrig.Witness
	cfg      modelConfig
	seed     int64
	prefix   string
	proxy    *testrig.SocketProxy
	exp      *testrig.Exporter
	settle   time.Duration
	cs       []*mContainer
	byName   map[string]*mContainer
	log      []string
	ops      int
	began    time.Time
	hostBase float64
	restarts int // exporter restarts
	// upAt is when the exporter was last seen following the daemon.
	upAt    time.Time
	dockerd bool
}

func runSequence(t *testing.T, w *testrig.Witness, seed int64, cfg modelConfig) int {
	s := &sequence{
		t: t, r: rand.New(rand.NewPCG(uint64(seed), 0x137)), w: w, cfg: cfg, seed: seed,
		prefix: testrig.UniqueName(t, "m") + "-", settle: 500 * time.Millisecond,
		byName: map[string]*mContainer{}, began: time.Now(),
	}
	t.Cleanup(s.removeContainers)
	s.proxy = testrig.NewSocketProxy(t)
	s.proxy.Up(t)

	// A quiet host: containers that run before the exporter starts, so
	// that it may see no event before its first cut.
	var early []*mContainer
	for range s.r.IntN(3) {
		early = append(early, s.run(runSpec{forever: true}))
	}
	if len(early) > 0 {
		time.Sleep(300 * time.Millisecond)
	}
	args := append([]string{}, fastSettle...)
	args = append(args, "--docker.host="+s.proxy.Host(), sigtraceOff, "--systemd.bus=none")
	if !cfg.stateless {
		args = append(args, "--state.path="+t.TempDir()+"/state")
	}
	s.exp = testrig.StartExporter(t, args...)
	s.exp.WaitFor(t, 30*time.Second, "docker source up", dockerUp(1))
	s.upAt = time.Now()
	s.hostBase = s.scrape().host
	s.logf("exporter up (host exits_total base %v)", s.hostBase)

	if len(early) > 0 && s.r.IntN(2) == 0 {
		s.cutKillStart(early[0])
	}
	for s.ops < cfg.ops {
		s.step()
	}
	s.finish()
	return s.ops
}

// op is one weighted kind of step.
type op struct {
	name   string
	weight int
	do     func()
}

func (s *sequence) step() {
	if s.live() < 2 && s.r.IntN(3) > 0 {
		s.run(s.randomSpec())
		return
	}
	ops := []op{
		{"run", 18, func() { s.run(s.randomSpec()) }},
		{"rerun", 3, s.rerun},
		{"kill", 10, func() { s.docker("kill", s.pick()) }},
		{"hostkill", 3, s.hostKill},
		{"stop", 7, func() { s.docker("stop", "-t", "1", s.pick()) }},
		{"restart", 6, func() { s.manual("restart", "-t", "1") }},
		{"start", 4, func() { s.manual("start") }},
		{"rm", 7, s.rm},
		{"cut", 8, s.cut},
		{"cut-after-counted", 4, s.cutAfterCounted},
		{"cut-kill-start-then-kill", 4, s.cutKillStartThenKill},
		{"lagged-crash-loop", 3, s.laggedCrashLoop},
		{"pause", 5, func() { s.sleep(200, 1500) }},
	}
	if !s.cfg.stateless {
		ops = append(ops, op{"exporter-restart", 8, s.exporterRestart})
	}
	if s.cfg.dockerd {
		ops = append(ops, op{"dockerd-restart", 1, s.dockerdRestart})
	}
	total := 0
	for _, o := range ops {
		total += o.weight
	}
	n := s.r.IntN(total)
	for _, o := range ops {
		if n -= o.weight; n < 0 {
			o.do()
			return
		}
	}
}

// inner is a step taken while the connection is cut or the exporter is
// down: only what changes containers.
func (s *sequence) inner() {
	switch s.r.IntN(7) {
	case 0, 1:
		s.docker("kill", s.pick())
	case 2:
		s.manual("restart", "-t", "1")
	case 3:
		s.rm()
	case 4:
		s.run(s.randomSpec())
	case 5:
		s.docker("stop", "-t", "1", s.pick())
	case 6:
		s.manual("start")
	}
}

func (s *sequence) logf(format string, args ...any) {
	s.log = append(s.log, fmt.Sprintf("%7.3fs %s", time.Since(s.began).Seconds(), fmt.Sprintf(format, args...)))
}

func (s *sequence) sleep(minMs, maxMs int) {
	d := time.Duration(minMs+s.r.IntN(maxMs-minMs+1)) * time.Millisecond
	s.logf("sleep %s", d)
	time.Sleep(d)
}

// docker runs one docker command as an operation; failing is allowed (a
// kill of a container that already exited, say) and logged.
func (s *sequence) docker(args ...string) (string, error) {
	s.ops++
	if len(args) > 0 && args[len(args)-1] == "" {
		s.logf("docker %s: no container to act on", args[0])
		return "", fmt.Errorf("no target")
	}
	out, err := testrig.Try("docker", args...)
	line := "docker " + strings.Join(args, " ")
	if err != nil {
		s.logf("%s: %v %s", line, err, out)
	} else {
		s.logf("%s: ok", line)
	}
	return out, err
}

// runSpec says how to run a container.
type runSpec struct {
	policy     string
	autoRemove bool
	ignoreTerm bool
	forever    bool
	code       int
	sleep      time.Duration
	name       string // a name to reuse
}

var exitCodes = []int{0, 1, 2, 3, 42, 137, 255}

func (s *sequence) randomSpec() runSpec {
	sp := runSpec{ignoreTerm: s.r.IntN(4) == 0}
	switch p := s.r.IntN(10); {
	case p < 7:
		sp.autoRemove = s.r.IntN(4) == 0
		sp.forever = s.r.IntN(3) == 0
		sp.code = exitCodes[s.r.IntN(len(exitCodes))]
		sp.sleep = time.Duration(200+s.r.IntN(2300)) * time.Millisecond
	case p < 9:
		sp.policy = "on-failure:" + strconv.Itoa(1+s.r.IntN(3))
		sp.code = exitCodes[1+s.r.IntN(len(exitCodes)-1)]
		sp.sleep = time.Duration(s.r.IntN(800)) * time.Millisecond
	default:
		sp.policy = "always"
		sp.code = exitCodes[s.r.IntN(len(exitCodes))]
		sp.sleep = time.Duration(300+s.r.IntN(1200)) * time.Millisecond
	}
	return sp
}

// run starts a container of this sequence.
func (s *sequence) run(sp runSpec) *mContainer {
	name := sp.name
	if name == "" {
		name = fmt.Sprintf("%sc%02d", s.prefix, len(s.cs))
	}
	c := &mContainer{name: name, policy: sp.policy, autoRemove: sp.autoRemove, forever: sp.forever}
	args := []string{"run", "-d", "--network", "none", "--label", testrig.OwnLabel, "--name", name}
	if sp.policy != "" {
		args = append(args, "--restart", sp.policy)
	}
	if sp.autoRemove {
		args = append(args, "--rm")
	}
	args = append(args, testrig.HelperImage)
	if sp.ignoreTerm {
		args = append(args, "-ignore-term")
	}
	if !sp.forever {
		args = append(args, "-sleep", sp.sleep.String(), "-exit", strconv.Itoa(sp.code))
	}
	if _, err := s.docker(args...); err != nil {
		c.removed = true
	}
	s.cs = append(s.cs, c)
	s.byName[name] = c
	return c
}

// rerun makes a new container under the name of a removed one.
func (s *sequence) rerun() {
	var gone []*mContainer
	for _, c := range s.cs {
		if c.removed && s.byName[c.name] == c {
			gone = append(gone, c)
		}
	}
	if len(gone) == 0 {
		s.run(s.randomSpec())
		return
	}
	sp := s.randomSpec()
	sp.name = gone[s.r.IntN(len(gone))].name
	s.run(sp)
}

// live is how many containers the model has not removed.
func (s *sequence) live() int {
	n := 0
	for _, c := range s.cs {
		if !c.removed && s.byName[c.name] == c {
			n++
		}
	}
	return n
}

// pick returns the name of a container of this sequence that the model
// has not removed ("" when there is none).
func (s *sequence) pick() string {
	var live []*mContainer
	for _, c := range s.cs {
		if !c.removed && s.byName[c.name] == c {
			live = append(live, c)
		}
	}
	if len(live) == 0 {
		return ""
	}
	return live[s.r.IntN(len(live))].name
}

func (s *sequence) manual(verb string, args ...string) {
	name := s.pick()
	if c := s.byName[name]; c != nil {
		c.manual = true
	}
	s.docker(append(append([]string{verb}, args...), name)...)
}

func (s *sequence) rm() {
	name := s.pick()
	if c := s.byName[name]; c != nil {
		c.removed = true
	}
	s.docker("rm", "-f", name)
}

// hostKill sends SIGKILL to the container's main process from the host:
// a die 137 with no kill event.
func (s *sequence) hostKill() {
	s.ops++
	name := s.pick()
	out, err := testrig.Try("docker", "inspect", "-f", "{{.State.Pid}}", name)
	pid, _ := strconv.Atoi(out)
	if err != nil || pid <= 0 {
		s.logf("host kill -9 %s: not running (%v %s)", name, err, out)
		return
	}
	err = syscall.Kill(pid, syscall.SIGKILL)
	s.logf("host kill -9 %s (pid %d): %v", name, pid, err)
}

// cut cuts the exporter's connection, changes containers, and heals.
func (s *sequence) cut() {
	s.ops++
	s.proxy.Down()
	s.logf("cut")
	began := time.Now()
	for range 1 + s.r.IntN(3) {
		s.inner()
	}
	s.holdCut(began)
}

// holdCut keeps the connection cut for 1–2.5 s in all, then heals it.
func (s *sequence) holdCut(began time.Time) {
	if d := time.Duration(1000+s.r.IntN(1500))*time.Millisecond - time.Since(began); d > 0 {
		time.Sleep(d)
	}
	s.proxy.Up(s.t)
	s.logf("heal (cut %s)", time.Since(began).Round(time.Millisecond))
}

// cutKillStart is the quiet host's step: kill and start again a container
// during the exporter's first cut.
func (s *sequence) cutKillStart(c *mContainer) {
	s.ops++
	s.proxy.Down()
	s.logf("cut (quiet host)")
	began := time.Now()
	s.docker("kill", c.name)
	c.manual = true
	s.docker("start", c.name)
	s.holdCut(began)
}

// cutAfterCounted kills a container, waits until the exporter counted
// that death, and cuts at once; the container is removed during the cut.
func (s *sequence) cutAfterCounted() {
	name := s.pick()
	before := s.deaths(name)
	if _, err := s.docker("kill", name); err != nil {
		return
	}
	s.ops++
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if n := s.deaths(name); n > before && s.counted(name) >= float64(n) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.proxy.Down()
	s.logf("cut after %s was counted (exporter %v, witness %d)", name, s.counted(name), s.deaths(name))
	began := time.Now()
	s.byName[name].removed = true
	s.docker("rm", "-f", name)
	s.holdCut(began)
}

// deaths is how many deaths of name the witness has seen.
func (s *sequence) deaths(name string) int {
	n := 0
	for _, d := range s.w.Deaths(name) {
		if d.Name == name {
			n++
		}
	}
	return n
}

// counted is the exporter's current count of name (its counters outlive
// its restarts).
func (s *sequence) counted(name string) float64 {
	n := 0.0
	for _, v := range s.scrape().byName[name] {
		n += v
	}
	return n
}

// cutKillStartThenKill kills and starts a container during a cut, then
// kills it again once the exporter is back.
func (s *sequence) cutKillStartThenKill() {
	name := s.pick()
	if name == "" {
		return
	}
	s.ops++
	s.proxy.Down()
	s.logf("cut")
	began := time.Now()
	s.docker("kill", name)
	s.byName[name].manual = true
	if s.r.IntN(2) == 0 {
		s.docker("start", name)
	} else {
		s.docker("restart", "-t", "1", name)
	}
	s.holdCut(began)
	s.waitUp(30 * time.Second)
	s.sleep(100, 800)
	s.docker("kill", name)
}

// laggedCrashLoop holds the exporter's event stream back while a
// container crash-loops, so that its handling lags the restarts.
func (s *sequence) laggedCrashLoop() {
	s.ops++
	lag := time.Duration(500+s.r.IntN(1000)) * time.Millisecond
	s.proxy.SetLag(lag)
	s.logf("event lag %s", lag)
	s.run(runSpec{policy: "on-failure:" + strconv.Itoa(3+s.r.IntN(3)), code: 1 + s.r.IntN(3), sleep: time.Duration(s.r.IntN(100)) * time.Millisecond})
	time.Sleep(2*time.Second + lag)
	s.proxy.SetLag(0)
	time.Sleep(lag) // what was held back is through
	s.logf("event lag off")
}

// exporterRestart stops the exporter (SIGTERM, or SIGKILL as a crash
// would), changes containers while it is down, and starts it again with
// the same state path. Its last counts are scraped just before the stop,
// at a quiet moment: no death whose verdict is still pending.
func (s *sequence) exporterRestart() {
	s.ops++
	if !s.waitQuiet(6 * time.Second) {
		s.logf("exporter restart skipped: the host was not quiet")
		return
	}
	last := s.scrape()
	sig := syscall.SIGTERM
	if s.r.IntN(3) == 0 {
		sig = syscall.SIGKILL
	}
	err := s.exp.Stop(s.t, sig)
	s.restarts++
	s.logf("exporter stopped by %s (%v); its last counts: host %v", sig, err, last.host)
	for range s.r.IntN(4) {
		s.inner()
	}
	s.sleep(300, 1500)
	s.exp.Start(s.t)
	s.logf("exporter started again")
	s.waitUp(30 * time.Second)
	// The counters are saved with the ledger: the new incarnation goes on
	// from where the last one stood, it never starts again from zero.
	now := s.scrape()
	for name, codes := range last.byName {
		for code, v := range codes {
			if now.byName[name][code] < v {
				s.t.Errorf("seed %d: after the exporter restart %s exit_code=%s fell from %v to %v", s.seed, name, code, v, now.byName[name][code])
			}
		}
	}
}

// dockerdRestart stops the daemon (its containers die in its shutdown)
// and starts it again through scripts/dockerd.sh.
func (s *sequence) dockerdRestart() {
	s.ops++
	script := testrig.RepoRoot() + "/scripts/dockerd.sh"
	s.t.Cleanup(func() { _, _ = testrig.Try(script, "start") })
	s.w.BeginDaemonRestart(s.upAt)
	began := time.Now()
	out, err := testrig.Try(script, "stop")
	s.logf("dockerd stop: %v %s", err, out)
	out, err = testrig.Try(script, "start")
	s.logf("dockerd start: %v %s (%s)", err, out, time.Since(began).Round(time.Millisecond))
	if err != nil {
		s.t.Fatalf("dockerd did not come back: %v\n%s", err, out)
	}
	s.w.EndDaemonRestart(s.t)
	s.dockerd = true
	s.waitUp(90 * time.Second)
}

// waitUp waits until the exporter's Docker source is up again.
func (s *sequence) waitUp(within time.Duration) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if v, _ := s.exp.Scrape(s.t).Value("exit137_source_up", map[string]string{"source": "docker"}); v == 1 {
			s.upAt = time.Now()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.logf("docker source still down after %s", within)
}

// waitQuiet waits until no container died for settle+600ms and the
// exporter's counts hold still.
func (s *sequence) waitQuiet(within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if time.Since(s.w.LastDie()) > s.settle+600*time.Millisecond {
			a := s.scrape()
			time.Sleep(300 * time.Millisecond)
			b := s.scrape()
			if a.equal(b) && time.Since(s.w.LastDie()) > s.settle+600*time.Millisecond {
				return true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// scrape reads the current incarnation's counts of this sequence's
// names, and its host total less the base.
func (s *sequence) scrape() incarnation {
	m := s.exp.Scrape(s.t)
	inc := incarnation{byName: map[string]map[string]float64{}, host: m.Sum("exit137_exits_total", nil) - s.hostBase}
	if f, ok := m["exit137_container_exits_total"]; ok {
		for _, metric := range f.Metric {
			var name, code string
			for _, l := range metric.Label {
				switch l.GetName() {
				case "name":
					name = l.GetValue()
				case "exit_code":
					code = l.GetValue()
				}
			}
			if !strings.HasPrefix(name, s.prefix) {
				continue
			}
			if inc.byName[name] == nil {
				inc.byName[name] = map[string]float64{}
			}
			inc.byName[name][code] += metric.GetCounter().GetValue()
		}
	}
	return inc
}

func (a incarnation) equal(b incarnation) bool {
	return a.host == b.host && fmt.Sprint(a.byName) == fmt.Sprint(b.byName)
}

// finish ends the crash loops, lets every container settle, and checks.
func (s *sequence) finish() {
	t := s.t
	s.proxy.SetLag(0)
	s.proxy.Up(t)
	if !s.exp.Running() {
		s.exp.Start(t)
	}
	for _, c := range s.cs {
		if c.policy != "" && !c.removed && s.byName[c.name] == c {
			s.docker("stop", "-t", "1", c.name)
		}
	}
	s.logf("end: waiting for the containers to settle")
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _ := testrig.Try("docker", "ps", "--filter", "label="+testrig.OwnLabel, "--format", "{{.Names}}")
		var busy []string
		for _, n := range strings.Fields(out) {
			if c := s.byName[n]; c != nil && !c.forever && c.policy == "" {
				busy = append(busy, n)
			}
		}
		if len(busy) == 0 {
			break
		}
		if time.Now().After(deadline) {
			s.logf("still running at the end: %v", busy)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.w.Sync(t)
	s.waitUp(60 * time.Second)

	// Wait for the counts to agree, then past twice the settle, so that a
	// late second count shows.
	deadline = time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && len(s.compare(s.scrape())) > 0 {
		time.Sleep(250 * time.Millisecond)
	}
	time.Sleep(2*s.settle + time.Second)
	got := s.scrape()
	problems := s.compare(got)
	problems = append(problems, s.witnessProblems()...)
	s.logf("end: %d ops, %d exporter restarts, %d cuts, dockerd restarted %v", s.ops, s.restarts, s.proxy.Cuts(), s.dockerd)
	if len(problems) > 0 {
		t.Errorf("seed %d: %d problems (replay: -run 'TestModelExactlyOnce' -args -model.seed=%d -model.sequences=1%s):\n  %s\n%s",
			s.seed, len(problems), s.seed, map[bool]string{true: " -model.stateless"}[s.cfg.stateless],
			strings.Join(problems, "\n  "), s.report(got))
	} else {
		t.Logf("seed %d: ok, %d deaths over %d names, %d ops, %d exporter restarts, %d cuts%s",
			s.seed, len(s.w.Deaths(s.prefix)), len(s.names()), s.ops, s.restarts, s.proxy.Cuts(), s.unknownNote(got))
	}
}

// names are this sequence's container names.
func (s *sequence) names() []string {
	var out []string
	for n := range s.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// witnessCounts is what the witness knows of one name.
type witnessCounts struct {
	total    int
	codes    map[string]int // known codes
	noCode   int            // inferred deaths whose code nobody holds
	inferred int            // deaths no event reported (a daemon restart)
	// unreplayable are deaths in or just before a daemon restart that
	// the exporter was not known to be connected for: it finds them only
	// by inspect, or gone, without a code.
	unreplayable int
}

func (s *sequence) witnessByName() map[string]*witnessCounts {
	out := map[string]*witnessCounts{}
	for _, d := range s.w.Deaths(s.prefix) {
		wc := out[d.Name]
		if wc == nil {
			wc = &witnessCounts{codes: map[string]int{}}
			out[d.Name] = wc
		}
		wc.total++
		if d.Inferred {
			wc.inferred++
		}
		if d.Unreplayable {
			wc.unreplayable++
		}
		if d.CodeKnown {
			wc.codes[strconv.Itoa(d.Code)]++
		} else {
			wc.noCode++
		}
	}
	return out
}

// unknownCode reports whether an exit_code label says the exporter does
// not know the code.
func unknownCode(code string) bool { return code == "-1" || code == "unknown" || code == "" }

// compare checks the exporter's counts against the witness's.
func (s *sequence) compare(got incarnation) []string {
	var problems []string
	wit := s.witnessByName()
	names := map[string]bool{}
	for n := range wit {
		names[n] = true
	}
	for n := range got.byName {
		names[n] = true
	}
	witTotal := 0
	for _, wc := range wit {
		witTotal += wc.total
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		wc := wit[n]
		if wc == nil {
			wc = &witnessCounts{codes: map[string]int{}}
		}
		codes := got.byName[n]
		total, unknown, extra := 0.0, 0.0, 0.0
		for code, v := range codes {
			total += v
			if unknownCode(code) {
				unknown += v
			} else if d := v - float64(wc.codes[code]); d > 0 {
				extra += d
			}
		}
		switch {
		case total != float64(wc.total):
			problems = append(problems, fmt.Sprintf("%s: counted %v times, the witness saw %d deaths (exporter %v, witness codes %v, %d inferred)",
				n, total, wc.total, codes, wc.codes, wc.inferred))
		case unknown > float64(wc.inferred+wc.unreplayable):
			problems = append(problems, fmt.Sprintf("%s: %v exits without a code, but only %d deaths the daemon could not replay (exporter %v, witness %v)",
				n, unknown, wc.inferred+wc.unreplayable, codes, wc.codes))
		case extra > float64(wc.noCode):
			problems = append(problems, fmt.Sprintf("%s: exit codes differ: exporter %v, witness %v (%d without a code)", n, codes, wc.codes, wc.noCode))
		}
	}
	if got.host != float64(witTotal) {
		problems = append(problems, fmt.Sprintf("host: exit137_exits_total rose by %v over %d exporter restarts, the witness saw %d deaths of this sequence's containers",
			got.host, s.restarts, witTotal))
	}
	return problems
}

// witnessProblems are the witness's own inconsistencies: its ground
// truth is then in doubt, and the failure says so.
func (s *sequence) witnessProblems() []string {
	policyOnly := map[string]bool{}
	if !s.dockerd {
		seen := map[string]int{}
		for _, c := range s.cs {
			seen[c.name]++
		}
		for _, c := range s.cs {
			if c.policy != "" && !c.manual && seen[c.name] == 1 {
				policyOnly[c.name] = true
			}
		}
	}
	var out []string
	for _, p := range s.w.Check(s.prefix, policyOnly) {
		out = append(out, "witness (ground truth in doubt): "+p)
	}
	return out
}

func (s *sequence) unknownNote(got incarnation) string {
	var notes []string
	for n, codes := range got.byName {
		for code, v := range codes {
			if unknownCode(code) && v > 0 {
				notes = append(notes, fmt.Sprintf("%s: %v", n, v))
			}
		}
	}
	if len(notes) == 0 {
		return ""
	}
	sort.Strings(notes)
	return "; exits counted without a code (daemon could not replay): " + strings.Join(notes, ", ")
}

// report is everything a failure needs to be understood.
func (s *sequence) report(got incarnation) string {
	var b strings.Builder
	fmt.Fprintf(&b, "--- op log (seed %d, prefix %s)\n%s\n", s.seed, s.prefix, strings.Join(s.log, "\n"))
	fmt.Fprintf(&b, "--- witness per name\n")
	wit := s.witnessByName()
	for _, n := range s.names() {
		if wc := wit[n]; wc != nil {
			fmt.Fprintf(&b, "%s: %d deaths, codes %v, %d without a code, %d inferred\n", n, wc.total, wc.codes, wc.noCode, wc.inferred)
		} else {
			fmt.Fprintf(&b, "%s: no deaths\n", n)
		}
	}
	fmt.Fprintf(&b, "--- witness events\n%s\n", strings.Join(s.w.EventLog(s.prefix), "\n"))
	fmt.Fprintf(&b, "--- witness notes\n%s\n", strings.Join(s.w.Notes(), "\n"))
	fmt.Fprintf(&b, "--- exporter counts after %d restarts (exit137_container_exits_total by name and exit_code; host rise)\n", s.restarts)
	fmt.Fprintf(&b, "host %v: %v\n", got.host, got.byName)
	m := s.exp.Scrape(s.t)
	fmt.Fprintf(&b, "--- current exporter series\n")
	for _, l := range m.Series("exit137_container_exits_total", nil) {
		if strings.Contains(l, s.prefix) {
			fmt.Fprintln(&b, l)
		}
	}
	fmt.Fprintf(&b, "%s\n", strings.Join(m.Series("exit137_exits_total", nil), "\n"))
	fmt.Fprintf(&b, "--- exporter log tail\n%s\n", s.exp.LogTail(80))
	return b.String()
}

// removeContainers removes this sequence's containers, whatever happened.
func (s *sequence) removeContainers() {
	out, err := testrig.Try("docker", "ps", "-aq", "--filter", "label="+testrig.OwnLabel, "--filter", "name="+s.prefix)
	if err == nil && out != "" {
		_, _ = testrig.Try("docker", append([]string{"rm", "-f"}, strings.Fields(out)...)...)
	}
}
