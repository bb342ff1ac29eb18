#!/usr/bin/env bash
# Every row of the durable-path table (benches/README.md, "The durable path") in one
# session, in the issue's order, with `corridor-load compare` (medians of REPEAT runs, the
# paths of a row interleaved, every process on CPU 0): the journal on and off at 4 × 64,
# 8 × 128 and 1 × 1 (with this disk's fdatasync), two shards crossing a hop and not, QUIC
# against plain quinn, Corridor against HAProxy, and the switch's CPU a round trip
# (utime + stime of `corridor serve` from /proc over the middle of a 4 × 64 run). The
# replicated rows are benches/replicated.sh's. Everything on 127.0.0.1.
#
#   REPEAT=3 DURATION=4s bash benches/durable.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REPEAT="${REPEAT:-3}"
DURATION="${DURATION:-4s}"
B=target/release/corridor-load
[ -x target/release/corridor ] && [ -x "$B" ] || { echo "build first: cargo build --release -p corridor -p corridor-load" >&2; exit 1; }
run() { echo "== $*"; "$B" compare --duration "$DURATION" --warmup 1s --repeat "$REPEAT" --placement shared "$@" 2>&1 | sed -n '/^workload/,$p'; }

run --paths corridor,corridor-journal --mode closed --connections 4 --inflight 64
run --paths corridor,corridor-journal --mode closed --connections 8 --inflight 128
run --paths corridor,corridor-journal --mode closed --connections 1 --inflight 1
run --paths corridor-journal --shards 2 --mode closed --connections 1 --inflight 1
run --paths corridor-journal --shards 2 --cross --mode closed --connections 1 --inflight 1
run --paths quinn,corridor-quic --mode closed --connections 1 --lanes 4 --inflight 16
run --paths quinn,corridor-quic --mode closed --connections 1 --lanes 1 --inflight 1
run --paths corridor,haproxy --mode closed --connections 4 --inflight 64
run --paths corridor,haproxy --mode closed --connections 8 --inflight 128

# Where a round trip's CPU goes: each process's utime + stime (the generator, the
# simulator, and `corridor serve` where the path has it) over the middle 4 s of a 7 s run,
# divided by the round trips the generator counted in that run's rate (steady after the
# first second). The switch's column at 4 × 64, journal off and on, is the CPU row. Every
# process shares CPU 0, so a path's rate is the inverse of the sum: the quinn row's ratio
# is the two paths' sums, and what the switch adds is its own column.
split() {
  local path=$1 log
  shift
  log="$(mktemp)"
  "$B" compare --paths "$path" "$@" --duration 7s --warmup 1s --repeat 1 --placement shared >"$log" 2>&1 &
  local gen=$!
  sleep 2
  local hz pids names
  hz="$(getconf CLK_TCK)"
  pids="$gen $(pgrep -P "$gen" -f 'corridor-load respond' | head -1 || true) $(pgrep -P "$gen" -f 'corridor serve' | head -1 || true)"
  names="generator simulator switch"
  # A process's own stat counts every thread it had, those that ended too (a segment's
  # preparation runs on a thread of its own and ends); its live threads' would not.
  ticks() { for p in $pids; do awk '{printf "%d ", $14+$15}' /proc/"$p"/stat 2>/dev/null || printf '0 '; done; }
  local t0 t1
  t0="$(ticks)"
  sleep 4
  t1="$(ticks)"
  wait "$gen"
  local rate
  rate="$(awk -v p="$path" '$1==p {print $2}' "$log" | tail -1)"
  python3 - "$path" "$rate" "$hz" "$names" "$t0" "$t1" <<'PY'
import sys
path, rate, hz = sys.argv[1], float(sys.argv[2].replace(",", "")), int(sys.argv[3])
names, t0, t1 = sys.argv[4].split(), sys.argv[5].split(), sys.argv[6].split()
us = [(int(b) - int(a)) / hz / (4 * rate) * 1e6 for a, b in zip(t0, t1)]
parts = ", ".join(f"{n} {u:.2f}" for n, u in zip(names, us))
print(f"== cpu split {path}: {rate:,.0f}/s; µs a round trip: {parts}; sum {sum(us):.2f}")
PY
  rm -f "$log"
}
split corridor --mode closed --connections 4 --inflight 64
split corridor-journal --mode closed --connections 4 --inflight 64
split quinn --mode closed --connections 1 --lanes 4 --inflight 16
split corridor-quic --mode closed --connections 1 --lanes 4 --inflight 16
split corridor --mode closed --connections 4 --inflight 16
