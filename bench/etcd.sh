#!/usr/bin/env bash
# Runs `shardbank bench` against a local 3-member etcd cluster, for comparing
# shardbank with etcd under the same workload.
#
#   npm run build && bench/etcd.sh --preset intra
#
# Starts three etcd members on 127.0.0.1 (client ports 2379/2381/2383, peer
# ports 2380/2382/2384; ETCD_BASE_PORT=N moves them to N, N+2, N+4 and
# N+1, N+3, N+5), each with its own data dir in a fresh temp dir and etcd's
# default durability (fsync on every commit), waits until all three report
# healthy, then runs `shardbank bench --etcd <the three client URLs>` with the
# arguments given here. On exit it stops those three members and removes the
# temp dir. Needs etcd (Debian/Ubuntu: sudo apt-get install etcd-server).
set -euo pipefail

if ! command -v etcd >/dev/null 2>&1; then
  echo "etcd is not installed. On Debian/Ubuntu: sudo apt-get install etcd-server" >&2
  exit 2
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MAIN="$ROOT/dist/cli/main.js"
if [[ ! -f "$MAIN" ]]; then
  echo "$MAIN is missing: run \"npm run build\" first" >&2
  exit 1
fi

BASE_PORT="${ETCD_BASE_PORT:-2379}"
DIR="$(mktemp -d "${TMPDIR:-/tmp}/shardbank-etcd.XXXXXX")"
PIDS=()

# Stops the members one at a time: a leader stopping hands leadership to a
# live follower at once, but stalls for seconds if its followers stop with it.
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

client_url() { echo "http://127.0.0.1:$((BASE_PORT + 2 * $1))"; }
peer_url() { echo "http://127.0.0.1:$((BASE_PORT + 2 * $1 + 1))"; }

CLUSTER="m0=$(peer_url 0),m1=$(peer_url 1),m2=$(peer_url 2)"
ENDPOINTS="$(client_url 0),$(client_url 1),$(client_url 2)"

for i in 0 1 2; do
  etcd --name "m$i" \
    --data-dir "$DIR/m$i" \
    --listen-client-urls "$(client_url "$i")" \
    --advertise-client-urls "$(client_url "$i")" \
    --listen-peer-urls "$(peer_url "$i")" \
    --initial-advertise-peer-urls "$(peer_url "$i")" \
    --initial-cluster "$CLUSTER" \
    --initial-cluster-token "shardbank-bench-$$" \
    --initial-cluster-state new \
    >"$DIR/m$i.log" 2>&1 &
  PIDS+=("$!")
done

# True when the member at client URL $1 answers that it is healthy.
healthy() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS --max-time 2 "$1/health" 2>/dev/null | grep -q '"health":"true"'
  else
    ETCDCTL_API=3 etcdctl --endpoints="$1" --command-timeout=2s endpoint health >/dev/null 2>&1
  fi
}

# Prints the end of every member's log (when the cluster does not come up).
show_logs() {
  for i in 0 1 2; do
    echo "--- m$i ($(client_url "$i")) ---" >&2
    tail -n 20 "$DIR/m$i.log" >&2 || true
  done
}

echo "starting etcd members at $ENDPOINTS" >&2
for _ in $(seq 1 60); do
  for i in 0 1 2; do
    if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
      echo "etcd member m$i exited (port in use?)" >&2
      show_logs
      exit 1
    fi
  done
  if healthy "$(client_url 0)" && healthy "$(client_url 1)" && healthy "$(client_url 2)"; then
    echo "etcd cluster healthy" >&2
    node "$MAIN" bench --etcd "$ENDPOINTS" "$@"
    exit
  fi
  sleep 0.5
done
echo "etcd cluster not healthy after 30 s" >&2
show_logs
exit 1
