#!/usr/bin/env bash
# A replicated node against a local-only journaling one, in one session, interleaved:
# three nats-server on loopback (R3, sync_interval: always), a corridor-load respond issuer,
# two `corridor serve` (release, one shard each, the default journal) — one with [cluster].
# Each workload runs against each node in turn, REPEAT times; the replicated node's own
# figure for the stream's acknowledgement (corridor_cluster_append_duration_seconds, read
# from its /metrics after each run) is printed beside it, and each run's CPU a transaction of
# the node and of the three servers. Everything on 127.0.0.1; every
# process is stopped at the end.
#
#   NATS_SERVER=path/to/nats-server bash benches/replicated.sh      (default: the tests' copy)
#   CORRIDOR=path/to/corridor: another build of the switch (a commit before a change), for before/after
#   REPEAT=3 DURATION=6s WARMUP=2s WORKLOADS="1x1 4x64 8x128"
#   CROSS=1: four nodes, each of two shards — local and replicated, with the acquirer and the
#   issuer on one shard, and on two (every transaction crossing a hop: the hand-off's cost).
#   SPLIT=1: a transaction crossing nodes — a cluster of two nodes, node split-a running
#   shard 0 (the acquirer's) and node split-b shard 1 (the issuer's), every transaction
#   crossing between them on a hop carried by a node link (mutual TLS) — beside one node of
#   two shards with both on shard 0 ("replicated") and with the issuer on shard 1
#   ("replicated-crossing"): what crossing a hop costs, and crossing nodes.
#   RELAY=1: the replicated node and a standby of the same cluster that relays its partners'
#   connections to it (node links in mutual TLS): "replicated" is the partner on the serving
#   node, "relayed" the same partner on the standby (the relay's cost).
#   JOURNAL_SET='checkpoint_segments = 64': lines added to every node's [journal] (e.g. no
#   checkpoint within a run, to see what checkpoints cost a longer one).
#   NATS_DELAY=1: the replicated node reaches each NATS server through a proxy that delays
#   every byte that many milliseconds each way (benches/delay_proxy.py): a node that far
#   from the stream's servers. Its round trip, not the host's CPU, then bounds what one
#   append at a time can have acknowledged.
set -euo pipefail
cd "$(dirname "$0")/.."
NATS_SERVER="${NATS_SERVER:-target/test-nats/bin/nats-server}"
REPEAT="${REPEAT:-3}"
DURATION="${DURATION:-6s}"
WARMUP="${WARMUP:-2s}"
WORKLOADS="${WORKLOADS:-1x1 4x64 8x128}"
CROSS="${CROSS:-0}"
RELAY="${RELAY:-0}"
SPLIT="${SPLIT:-0}"
JOURNAL_SET="${JOURNAL_SET:-}"
C="$(realpath -m "${CORRIDOR:-target/release/corridor}")"
L=target/release/corridor-load
[ -x "$NATS_SERVER" ] || { echo "no nats-server at $NATS_SERVER (run the cluster tests once, or set NATS_SERVER)" >&2; exit 1; }
[ -x "$C" ] && [ -x "$L" ] || { echo "build first: cargo build --release -p corridor -p corridor-load" >&2; exit 1; }

W="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] && echo "kept $W" || rm -rf "$W"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Three NATS servers.
routes=(); clients=(); rports=(); nats_pids=()
for i in 0 1 2; do clients+=("$(port)"); rports+=("$(port)"); done
for i in 0 1 2; do routes+=("\"nats-route://127.0.0.1:${rports[$i]}\""); done
for i in 0 1 2; do
  cat > "$W/n$i.conf" <<EOF
server_name: n$i
listen: 127.0.0.1:${clients[$i]}
jetstream { store_dir: "$W/n$i", sync_interval: always }
cluster { name: corridor-bench, listen: 127.0.0.1:${rports[$i]}, routes: [$(IFS=,; echo "${routes[*]}")] }
EOF
  "$NATS_SERVER" -c "$W/n$i.conf" 2>"$W/n$i.log" & pids+=($!); nats_pids+=($!)
done

# The replicated node's way to the servers: straight, or through a delaying proxy each.
node_nats=("${clients[@]}")
if [ -n "${NATS_DELAY:-}" ]; then
  for i in 0 1 2; do
    node_nats[$i]="$(port)"
    python3 benches/delay_proxy.py "${node_nats[$i]}" "${clients[$i]}" "$NATS_DELAY" & pids+=($!)
  done
fi

# The issuer.
ISS="$(port)"
"$L" respond --listen "127.0.0.1:$ISS" >"$W/respond.log" 2>&1 & pids+=($!)

# Two nodes: local-only and replicated.
printf '5a%.0s' $(seq 32) > "$W/pan.key"
printf 'bench-token-0123456789abcdef\n' > "$W/admin.token"
node() { # name acq_port admin_port cluster? [issuer's shard: 0 or 1, two shards]
  local shards=1 acq_shard="" iss_shard=""
  if [ -n "${5:-}" ]; then shards=2; acq_shard="shard = 0"; iss_shard="shard = $5"; fi
  cat > "$W/$1.toml" <<EOF
[switch]
shards = $shards

[[participant]]
id = "acq"
roles = ["acquirer"]
acquirer_ids = ["12345678"]
$acq_shard
[[participant.link]]
name = "acq-1"
mode = "listen"
address = "127.0.0.1:$2"
framing = "native"
dialect = "native"
inflight_max = 4096
sign_on_required = false

[[participant]]
id = "iss"
roles = ["issuer"]
$iss_shard
[[participant.link]]
name = "iss-1"
mode = "dial"
address = "127.0.0.1:$ISS"
framing = "native"
dialect = "native"
inflight_max = 4096

[[route]]
default = true
destination = "iss"

[journal]
dir = "journal-$1"
key_file = "pan.key"
${JOURNAL_SET}

[admin]
address = "127.0.0.1:$3"
token_file = "admin.token"
EOF
  if [ "$4" = yes ]; then
    printf '\n[cluster]\nnode = "%s"\nstream = "B_%s"\nnats = ["nats://127.0.0.1:%s", "nats://127.0.0.1:%s", "nats://127.0.0.1:%s"]\n' \
      "$1" "${1//-/_}" "${node_nats[0]}" "${node_nats[1]}" "${node_nats[2]}" >> "$W/$1.toml"
  elif [ "$4" = split ]; then
    # One cluster of two, each node running one of the two shards (node links between them).
    printf '\n[cluster]\nnode = "%s"\nstream = "B_split"\nnats = ["nats://127.0.0.1:%s", "nats://127.0.0.1:%s", "nats://127.0.0.1:%s"]\nrelay_tls = { cert = "certs/node.pem", key = "certs/node.key", ca = ["certs/ca.pem"] }\n[cluster.nodes.split-a]\nrelay = "127.0.0.1:%s"\nshards = [0]\n[cluster.nodes.split-b]\nrelay = "127.0.0.1:%s"\nshards = [1]\n' \
      "$1" "${clients[0]}" "${clients[1]}" "${clients[2]}" "$RELAY_A" "$RELAY_B" >> "$W/$1.toml"
  elif [ "$4" = relay ]; then
    # One cluster of two: the serving node and its standby, each with its node link port.
    printf '\n[cluster]\nnode = "%s"\nstream = "B_replicated"\nnats = ["nats://127.0.0.1:%s", "nats://127.0.0.1:%s", "nats://127.0.0.1:%s"]\nstandby = true\nrelay_tls = { cert = "certs/%s.pem", key = "certs/%s.key", ca = ["certs/ca.pem"] }\n[cluster.nodes.replicated]\nrelay = "127.0.0.1:%s"\n[cluster.nodes.relayed]\nrelay = "127.0.0.1:%s"\n' \
      "$1" "${clients[0]}" "${clients[1]}" "${clients[2]}" "$1" "$1" "$RELAY_A" "$RELAY_B" >> "$W/$1.toml"
  fi
  local home="$W"
  if [ "$4" = split ]; then
    # Each node of the cluster in a directory of its own: its secrets at the same paths on
    # every node (the cluster's configuration names them once), its own node certificate.
    home="$W/$1"; mkdir -p "$home/certs"
    cp "$W/pan.key" "$W/admin.token" "$W/$1.toml" "$home/"
    cp "$W/certs/ca.pem" "$home/certs/"; cp "$W/certs/$1.pem" "$home/certs/node.pem"; cp "$W/certs/$1.key" "$home/certs/node.key"
  fi
  (cd "$home" && exec "$C" serve --config "$1.toml" 2>"$W/$1.log") & pids+=($!); NODE_PID[$1]=$!
}
declare -A ACQ ADMIN NODE_PID
if [ "$CROSS" = 1 ]; then NODES="local local-crossing replicated replicated-crossing"
elif [ "$RELAY" = 1 ]; then NODES="replicated relayed"
elif [ "$SPLIT" = 1 ]; then NODES="replicated replicated-crossing split-a"
else NODES="local replicated"; fi
if [ "$SPLIT" = 1 ]; then
  RELAY_A="$(port)"; RELAY_B="$(port)"
  "$C" certs dev --out "$W/certs" --participant split-a --participant split-b >/dev/null
  for n in $NODES split-b; do ACQ[$n]="$(port)"; ADMIN[$n]="$(port)"; done
  node replicated "${ACQ[replicated]}" "${ADMIN[replicated]}" yes 0
  node replicated-crossing "${ACQ[replicated-crossing]}" "${ADMIN[replicated-crossing]}" yes 1
  node split-a "${ACQ[split-a]}" "${ADMIN[split-a]}" split 1
  node split-b "${ACQ[split-b]}" "${ADMIN[split-b]}" split 1
  ready_log() { for _ in $(seq 300); do grep -q "$2" "$W/$1.log" 2>/dev/null && return 0; sleep 0.1; done; echo "$1: no '$2'" >&2; return 1; }
  ready_log split-a "hop to another node up"
elif [ "$RELAY" = 1 ]; then
  RELAY_A="$(port)"; RELAY_B="$(port)"
  "$C" certs dev --out "$W/certs" --participant replicated --participant relayed >/dev/null
  for n in $NODES; do ACQ[$n]="$(port)"; ADMIN[$n]="$(port)"; done
  # The serving node first (it takes the shard), then the standby.
  node replicated "${ACQ[replicated]}" "${ADMIN[replicated]}" relay
  ready_log() { for _ in $(seq 300); do grep -q "$2" "$W/$1.log" 2>/dev/null && return 0; sleep 0.1; done; echo "$1: no '$2'" >&2; return 1; }
  ready_log replicated "the journal is replicated"
  node relayed "${ACQ[relayed]}" "${ADMIN[relayed]}" relay
  ready_log relayed "relaying the link's connections"
else
for n in $NODES; do
  ACQ[$n]="$(port)"; ADMIN[$n]="$(port)"
  cluster=no; [[ $n == replicated* ]] && cluster=yes
  placement=""; [ "$CROSS" = 1 ] && { placement=0; [[ $n == *crossing ]] && placement=1; }
  node "$n" "${ACQ[$n]}" "${ADMIN[$n]}" "$cluster" $placement
done
fi
ready() { for _ in $(seq 300); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer bench-token-0123456789abcdef' "http://127.0.0.1:$1/readyz")" = 200 ] && return 0
  sleep 0.1; done; echo "node on admin port $1 not ready" >&2; return 1; }
for n in $NODES; do [ "$n" = relayed ] || ready "${ADMIN[$n]}"; done

# A replicated node's stream acknowledgements (count, sum, p50 from buckets) since the last read.
acks() { curl -s -H 'Authorization: Bearer bench-token-0123456789abcdef' "http://127.0.0.1:${ADMIN[$1]}/metrics" \
  | grep '^corridor_cluster_append_duration_seconds_bucket' | sed -E 's/.*le="([^"]+)".*\} ([0-9]+).*/\1 \2/'; }
p50_between() { # before-file after-file
  python3 - "$1" "$2" <<'EOF'
import sys
def load(p):
    # Every shard's buckets, summed by bound (a node of two shards has two families of lines).
    by = {}
    for l in open(p):
        if l.strip():
            le = float('inf') if l.split()[0] == '+Inf' else float(l.split()[0])
            by[le] = by.get(le, 0) + int(l.split()[1])
    return sorted(by.items())
a, b = load(sys.argv[1]), load(sys.argv[2])
d = [(le, nb - na) for (le, na), (_, nb) in zip(a, b)]
total = d[-1][1]
if total == 0: print("-"); sys.exit()
prev_le, prev_c = 0.0, 0
for le, c in d:
    if c >= total / 2:
        if le == float('inf'): print(f">{prev_le*1e3:.2f} ms"); break
        f = (total / 2 - prev_c) / max(c - prev_c, 1)
        print(f"{(prev_le + f * (le - prev_le)) * 1e6:.0f} us ({total} appends)"); break
    prev_le, prev_c = le, c
EOF
}

# The CPU (utime + stime, clock ticks) processes used so far.
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo "$t"; }
HZ="$(getconf CLK_TCK)"

# cpu/tx: the node's and the three nats-server's CPU over the run (warm-up included), divided
# by the transactions of warm-up and run at the measured rate — what each transaction costs
# the node and the stream (a local-only node's column is the idle servers').
echo "workload  node                 throughput/s  p50_us  p99_us  stream-ack-p50  node-cpu/tx  nats-cpu/tx"
for rep in $(seq "$REPEAT"); do
  for wl in $WORKLOADS; do
    conns="${wl%x*}"; inflight="${wl#*x}"
    for which in $NODES; do
      acq=${ACQ[$which]}
      [ "$which" = relayed ] && src=replicated || src="$which"   # the relayed node's answers are the serving node's
      [[ $src == replicated* || $src == split* ]] && acks "$src" > "$W/before"
      t_node="$(ticks "${NODE_PID[$src]:-0}")"; t_nats="$(ticks "${nats_pids[@]}")"
      out="$("$L" run --target "127.0.0.1:$acq" --mode closed --connections "$conns" --inflight "$inflight" \
        --duration "$DURATION" --warmup "$WARMUP" --no-sign-on --json - 2>/dev/null)"
      d_node=$(( $(ticks "${NODE_PID[$src]:-0}") - t_node )); d_nats=$(( $(ticks "${nats_pids[@]}") - t_nats ))
      ack="-"
      if [[ $src == replicated* || $src == split* ]]; then acks "$src" > "$W/after"; ack="$(p50_between "$W/before" "$W/after")"; fi
      python3 - "$wl" "$which" "$ack" "$out" "$d_node" "$d_nats" "$HZ" "$DURATION" "$WARMUP" <<'EOF'
import json, sys
wl, which, ack, out, d_node, d_nats, hz, duration, warmup = sys.argv[1:10]
r = json.loads(out)
lat = r["latency"]
note = "" if r.get("valid", True) else f"  (invalid: {r.get('invalid_reason')})"
secs = lambda t: float(t[:-2]) / 1000 if t.endswith("ms") else float(t.rstrip("s"))
tx = r["answered_per_s"] * (secs(duration) + secs(warmup))
per = lambda ticks: f"{int(ticks) / int(hz) / tx * 1e6:.2f} us" if tx else "-"
print(f"{wl:<9} {which:<20} {r['answered_per_s']:>12,.0f}  {lat['p50_us']:>6}  {lat['p99_us']:>6}  {ack}  {per(d_node):>11}  {per(d_nats):>11}{note}")
EOF
    done
  done
done
