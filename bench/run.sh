#!/usr/bin/env bash
# bench/run.sh: how fast and lean Klaxon is, in one Markdown table.
#
#   bench/run.sh                  # the full run: about 8 minutes once built
#   bench/run.sh --quick          # shorter runs: about 4 minutes once built
#   bench/run.sh --no-postgres    # SQLite only
#   bench/run.sh --connections 64 # more load-generator connections (default 32)
#   bench/run.sh --socket-only --no-postgres  # run 6 alone: about 1 minute once built
#   bench/run.sh --pages-only     # run 7 alone (web pages at 10,000 incidents)
#   bench/run.sh --main-only      # runs 1–3, memory and 8 alone (no timers, 6, 7)
#   bench/run.sh --timers-only    # runs 4 and 4b alone (timers, idle CPU)
#   bench/run.sh --klaxon-cpus 1  # every klaxon serve pinned to CPU 1 (taskset -c)
#   bench/run.sh --help           # this text
#
# The --*-only modes exclude each other.
#
# Steps:
#   1. cargo build --release -p klaxon, then -p klaxon-bench (a clean build takes
#      about 6 minutes on 2 cores; after that only what changed is rebuilt).
#   2. PostgreSQL on 127.0.0.1:54329 via tests/services.sh (ensure_postgres,
#      which installs it with apt when missing, or reuses one that answers).
#   3. target/release/klaxon-bench, which starts a fake Slack Web API and a bare
#      axum baseline server (each its own process), then for SQLite and then
#      PostgreSQL, each on a fresh database and a fresh `klaxon serve`:
#        1. signed `/incident list`: req/s and latency at saturation (closed
#           loop, fixed number of keep-alive connections), and latency at a
#           fixed 1,000 req/s (open loop: queueing counts), vs the baseline;
#        2. signed `/incident open P2 …` (one write transaction each): req/s, p99;
#        3. Alertmanager notifications (10 alerts each, new groups and repeats):
#           notifications accepted per second; then (3b) one notification of
#           5,000 alerts (about 5 MB): time to 2xx, and peak RSS before and after;
#        4. timers: with Klaxon stopped, 100,000 far-future jobs and 10,000 due
#           evenly over 10 s go straight into the jobs table; Klaxon starts and
#           the lateness comes from its klaxon_job_lateness_seconds histogram;
#           then its CPU while idle holding the 100,000 timers (60 s; 20 s with
#           --quick), from /proc/<pid>/stat; then (4b) the same 10,000 due
#           jobs again while four one-minute actions (`/incident run
#           slow-check`, a command sleeping 60 s) run: their lateness must
#           match run 4's, because actions run on a lane of their own;
#        5. memory (VmRSS idle, VmHWM after runs 1–3) and time from spawn to
#           the first 200 from /readyz.
#      Then (8), on PostgreSQL, three `klaxon serve` replicas on one fresh
#      database, the load of runs 3 and 2 spread evenly over them:
#      notifications/s and opens/s, CPU, the outbox drain of the three
#      senders together, and chat.postMessage calls received against
#      messages recorded as posted (each must go out once). The replicas
#      share this machine's two cores with PostgreSQL and the load generator.
#      Then, on SQLite (6) Socket Mode: the fake Slack answers
#      apps.connections.open with a ws://127.0.0.1 URL and pushes
#      slash_commands envelopes at 500 a second (open loop) for 10 s (5 s
#      with --quick), timing each from its sending to its ack: first to a bare
#      client that acks at once (the baseline), then to Klaxon running
#      `/incident list`, then `/incident open P3 …`; target p99 < 50 ms.
#      Then (7) the web pages: 10,000 incidents over 120 days seeded straight
#      into a fresh database (components, public updates, pages, timelines),
#      Klaxon started, and /status, /status.json, /status.atom, /incidents
#      (first page, page 150, filtered) and /incidents/INC-5000 each fetched
#      one request at a time: bytes, median and p99 beside /healthz on the
#      same server; target p99 < 200 ms.
#      It prints the table (figure, SQLite, PostgreSQL, target, ratio to the
#      baseline measured in the same run, met/missed) and, under it, every
#      request Klaxon did not accept and every warning or error Klaxon logged.
#
# Klaxon runs with RUST_LOG=warn and JSON logs; its stdout and stderr, its
# config and SQLite files and results.md are kept in the output directory
# (/tmp/klaxon-bench-<time>/, or --out DIR). Other arguments go to
# klaxon-bench as they are (see target/release/klaxon-bench --help).
#
# Everything listens on and is sent to 127.0.0.1 only; every load loop is
# bounded in time and count; every child process is stopped at the end, also
# on an error or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

use_postgres=1
out=""
prev=""
for arg in "$@"; do
  case "$arg" in
    -h | --help)
      # This file's header is the manual.
      sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    --no-postgres) use_postgres=0 ;;
  esac
  [ "$prev" = "--out" ] && out="$arg"
  prev="$arg"
done
# With no --out, a directory of its own; with one, klaxon-bench gets it as given.
out_arg=()
if [ -z "$out" ]; then
  out="${TMPDIR:-/tmp}/klaxon-bench-$(date +%Y%m%d-%H%M%S)"
  out_arg=(--out "$out")
fi
mkdir -p "$out"

cleanup() {
  # Only the processes the bench started (their pids are in children.pids).
  local pid
  [ -f "$out/children.pids" ] || return 0
  while read -r pid; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null \
      && grep -qa klaxon "/proc/$pid/cmdline" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done <"$out/children.pids"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "[bench] building Klaxon and klaxon-bench (release)…" >&2
# One package at a time: built together, Cargo would unify their dependencies'
# features and make a klaxon binary other than the one `cargo run --release`
# makes, and each would then rebuild it.
cargo build --release --locked -p klaxon >&2
cargo build --release --locked -p klaxon-bench >&2

if [ "$use_postgres" = 1 ]; then
  # shellcheck source=tests/services.sh
  source tests/services.sh
  ensure_postgres
fi

echo "[bench] Klaxon $(git describe --always --dirty 2>/dev/null || echo '(no git)'), output in $out" >&2
# In the background, so that a SIGINT or SIGTERM to this script runs its trap
# at once (bash defers traps while a foreground child runs); klaxon-bench is
# told too, and stops its children before it exits.
target/release/klaxon-bench --klaxon target/release/klaxon "${out_arg[@]}" "$@" &
bench_pid=$!
trap 'kill -INT "$bench_pid" 2>/dev/null || true; wait "$bench_pid" || true; exit 130' INT TERM
wait "$bench_pid"
