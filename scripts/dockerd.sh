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

# A daemon killed while its containers ran leaves their dead shims in
# containerd's state dir. dockerd's containerd cleans each up at start
# (~45-50 ms apiece) and dockerd gives it only 15 s, so a thousand of them
# make dockerd exit ("timeout waiting for containerd to start"), every time.
# Run that containerd alone first, with dockerd's own config, until it
# serves: the cleanup then has the time it needs, and stays done.
containerd_dir=/var/run/docker/containerd
reap_dead_shims() {
  local config=$containerd_dir/containerd.toml tasks=$containerd_dir/daemon/io.containerd.runtime.v2.task/moby
  [ -f "$config" ] && [ -n "$(ls -A "$tasks" 2>/dev/null)" ] || return 0
  local socket
  socket=$(sed -n '/^\[grpc\]/,/^\[/s/^ *address = "\(.*\)"/\1/p' "$config")
  # A containerd still running from an earlier dockerd is dockerd's to reuse.
  local running
  running=$(cat "$containerd_dir/containerd.pid" 2>/dev/null || true)
  if [ -n "$running" ] && [ "$(cat "/proc/$running/comm" 2>/dev/null)" = containerd ]; then
    return 0
  fi
  echo "containerd: $(ls "$tasks" | wc -l) task dirs left by an earlier daemon; cleaning them up before dockerd starts" >&2
  containerd --config "$config" >>"$log" 2>&1 </dev/null &
  local pid=$! deadline=$((SECONDS + 600))
  until ctr --address "$socket" version >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "containerd exited while cleaning up; dockerd will try" >&2
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "containerd still cleaning up after 600 s; dockerd will try" >&2
      break
    fi
    sleep 1
  done
  echo "containerd: cleanup done, $(ls "$tasks" 2>/dev/null | wc -l) task dirs left" >&2
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

start() {
  install
  if answers; then return 0; fi
  mkdir -p "$state"
  reap_dead_shims
  # Retries stay for what reap_dead_shims cannot see (a dockerd exiting
  # while starting for another reason that a second attempt gets past).
  for attempt in 1 2 3 4 5; do
    # setsid: the daemon outlives this script and is not in the caller's
    # process group, so a test runner's Ctrl-C does not take it down.
    setsid dockerd --bridge=none --iptables=false --ip6tables=false --pidfile "$pidfile.dockerd" \
      >>"$log" 2>&1 < /dev/null &
    pid=$!
    echo "$pid" >"$pidfile"
    # A daemon restoring hundreds of containers whose tasks died with an
    # earlier daemon takes minutes before it serves (~0.3 s each here).
    local deadline=$((SECONDS + 600))
    until answers; do
      kill -0 "$pid" 2>/dev/null || break
      if [ "$SECONDS" -ge "$deadline" ]; then
        echo "dockerd $pid did not answer within 600 s" >&2
        tail -20 "$log" >&2
        return 1
      fi
      sleep 0.5
    done
    answers && return 0
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
