#!/usr/bin/env bash
# Starts and stops the Docker daemon the tests use. It only ever stops a
# daemon it started itself (by the PID it recorded), and it never lets
# traffic leave the machine: no bridge, no iptables, and every test
# container runs with --network none.
#   scripts/dockerd.sh start    install docker.io if missing, start dockerd unless one answers
#   scripts/dockerd.sh stop     stop the dockerd this script started (SIGTERM, wait)
#   scripts/dockerd.sh status   exit 0 when the daemon answers
set -euo pipefail
state=${EXIT137_TEST_STATE:-/run/exit137-test}
pidfile=$state/dockerd.pid
log=$state/dockerd.log

answers() { timeout 5 docker info >/dev/null 2>&1; }

install() {
  command -v dockerd >/dev/null && command -v docker >/dev/null && return
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io >/dev/null
}

start() {
  install
  if answers; then return 0; fi
  mkdir -p "$state"
  # A daemon that was killed with containers running leaves their dead
  # shims behind; dockerd's containerd cleans them up at start (~45 ms
  # each) and dockerd gives it 15 s, then exits ("timeout waiting for
  # containerd to start"). What was cleaned stays cleaned, so another
  # attempt gets further: a few hundred dead shims take two or three.
  for attempt in 1 2 3 4 5; do
    # setsid: the daemon outlives this script and is not in the caller's
    # process group, so a test runner's Ctrl-C does not take it down.
    setsid dockerd --bridge=none --iptables=false --ip6tables=false --pidfile "$pidfile.dockerd" \
      >>"$log" 2>&1 < /dev/null &
    pid=$!
    echo "$pid" >"$pidfile"
    for _ in $(seq 1 120); do
      answers && return 0
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then break; fi
    rm -f "$pidfile"
    echo "dockerd exited while starting (attempt $attempt): $(tail -1 "$log")" >&2
  done
  echo "dockerd did not come up; last lines of $log:" >&2
  tail -20 "$log" >&2
  return 1
}

stop() {
  [ -f "$pidfile" ] || { echo "no dockerd started by this script" >&2; return 1; }
  pid=$(cat "$pidfile")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 120); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
    sleep 0.5
  done
  echo "dockerd $pid did not stop" >&2
  return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) answers ;;
  owned) [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null ;;
  *) echo "usage: $0 start|stop|status|owned" >&2; exit 2 ;;
esac
