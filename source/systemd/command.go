package systemd

import (
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// containerName is what Docker accepts as a name; anything else (an
// unexpanded ${VAR}, a specifier) cannot be looked up.
var containerName = regexp.MustCompile(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// dockerGlobalValued are the docker client's global options that take a
// value; the rest (-D, --tls, --tlsverify) are booleans.
var dockerGlobalValued = map[string]bool{
	"-H": true, "--host": true, "-c": true, "--context": true, "-l": true, "--log-level": true,
	"--config": true, "--tlscacert": true, "--tlscert": true, "--tlskey": true,
}

// boolFlags are the options of each subcommand that take no value: every
// other option does, which is how the image (run) or the first name is
// told from an option's value.
var boolFlags = map[string]map[string]bool{
	"run": set("-d", "--detach", "-i", "--interactive", "-t", "--tty", "--rm", "--init", "--privileged",
		"-P", "--publish-all", "--read-only", "--sig-proxy", "--no-healthcheck", "--oom-kill-disable",
		"-q", "--quiet", "--disable-content-trust", "--use-api-socket", "--help"),
	"start": set("-a", "--attach", "-i", "--interactive", "--help"),
	"stop":  set("--help"),
	"kill":  set("--help"),
	"rm":    set("-f", "--force", "-l", "--link", "-v", "--volumes", "--help"),
}

func set(items ...string) map[string]bool {
	m := make(map[string]bool, len(items))
	for _, s := range items {
		m[s] = true
	}
	return m
}

// ContainerNames returns the names of the containers that the commands of
// a unit run or stop: `docker run|create … --name X` and `docker start X`
// (in ExecStart), `docker stop|kill|rm X…` (in ExecStop), also as `docker
// container <cmd>`, behind `sh -c '…'`, `exec` or `env VAR=…`. Each
// command is an argv, its executable first.
func ContainerNames(commands ...[]string) []string {
	var names []string
	for _, argv := range commands {
		for _, cmd := range expandShell(argv) {
			for _, n := range dockerNames(cmd) {
				n = strings.TrimPrefix(n, "/")
				if !slices.Contains(names, n) {
					names = append(names, n)
				}
			}
		}
	}
	return names
}

// expandShell turns `sh -c 'a; b'` into its commands; any other argv is
// its own single command.
func expandShell(argv []string) [][]string {
	argv = unwrap(argv)
	if len(argv) >= 3 && isShell(argv[0]) && argv[1] == "-c" {
		var out [][]string
		for _, cmd := range SplitShell(argv[2]) {
			out = append(out, unwrap(cmd))
		}
		return out
	}
	return [][]string{argv}
}

func isShell(path string) bool {
	switch filepath.Base(path) {
	case "sh", "bash", "dash", "ash", "zsh":
		return true
	}
	return false
}

// unwrap drops what runs a command without changing it: `exec`, `env`,
// and VAR=value assignments.
func unwrap(argv []string) []string {
	for len(argv) > 0 {
		switch a := argv[0]; {
		case a == "exec" || filepath.Base(a) == "env":
			argv = argv[1:]
		case strings.Contains(a, "=") && !strings.HasPrefix(a, "-"):
			argv = argv[1:]
		default:
			return argv
		}
	}
	return argv
}

// dockerNames returns the container names one docker command names.
func dockerNames(argv []string) []string {
	if len(argv) < 2 || filepath.Base(argv[0]) != "docker" {
		return nil
	}
	args := skipGlobals(argv[1:])
	if len(args) > 0 && args[0] == "container" {
		args = args[1:]
	}
	if len(args) == 0 {
		return nil
	}
	sub := args[0]
	if sub == "create" {
		sub = "run"
	}
	bools, ok := boolFlags[sub]
	if !ok {
		return nil
	}
	name, positional := scanOptions(args[1:], bools)
	if sub == "run" {
		if name != "" && containerName.MatchString(name) {
			return []string{name}
		}
		return nil
	}
	var names []string
	for _, p := range positional {
		if containerName.MatchString(p) {
			names = append(names, p)
		}
	}
	return names
}

func skipGlobals(args []string) []string {
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		opt := args[0]
		args = args[1:]
		if dockerGlobalValued[opt] && len(args) > 0 {
			args = args[1:]
		}
	}
	return args
}

// scanOptions walks a subcommand's options up to its first positional
// argument (run: the image, after which the container's own arguments
// follow), returning --name's value and the positional arguments.
func scanOptions(args []string, bools map[string]bool) (name string, positional []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return name, args[i+1:]
		case !strings.HasPrefix(a, "-") || a == "-":
			return name, args[i:]
		case strings.HasPrefix(a, "--"):
			opt, value, hasValue := strings.Cut(a, "=")
			if !hasValue && !bools[opt] && i+1 < len(args) {
				i++
				value = args[i]
			}
			if opt == "--name" {
				name = value
			}
		default:
			// Short options may be grouped (-dit) and a valued one takes
			// the rest of the group (-p80:80) or the next argument.
			for j := 1; j < len(a); j++ {
				if bools["-"+a[j:j+1]] {
					continue
				}
				if j == len(a)-1 && i+1 < len(args) {
					i++
				}
				break
			}
		}
	}
	return name, nil
}
