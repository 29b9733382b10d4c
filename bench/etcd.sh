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
# arguments given here. On exit it stops those three members by their pids
# and removes the temp dir. Needs etcd (Debian's etcd-server, which root gets
# installed with apt-get when it is missing).
#
# Sourced (bench/compare.sh does), it only defines etcd_start and etcd_stop.
set -euo pipefail

ETCD_SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=bench/lib.sh
source "$ETCD_SCRIPT_DIR/lib.sh"

ETCD_PIDS=()
ETCD_ENDPOINTS=""

# Starts the three members with their data under $1 and client ports from $2
# (see above); sets ETCD_PIDS and ETCD_ENDPOINTS (comma-separated client
# URLs) and returns once all three are healthy, or fails after 30 s with the
# end of their logs.
etcd_start() {
  local dir="$1" base="$2" etcd i
  etcd="$(need_program etcd etcd-server)" || return 2
  mkdir -p "$dir"
  local client=() peer=()
  for i in 0 1 2; do
    client+=("http://127.0.0.1:$((base + 2 * i))")
    peer+=("http://127.0.0.1:$((base + 2 * i + 1))")
  done
  local cluster="m0=${peer[0]},m1=${peer[1]},m2=${peer[2]}"
  ETCD_ENDPOINTS="${client[0]},${client[1]},${client[2]}"
  for i in 0 1 2; do
    "$etcd" --name "m$i" \
      --data-dir "$dir/m$i" \
      --listen-client-urls "${client[$i]}" \
      --advertise-client-urls "${client[$i]}" \
      --listen-peer-urls "${peer[$i]}" \
      --initial-advertise-peer-urls "${peer[$i]}" \
      --initial-cluster "$cluster" \
      --initial-cluster-token "shardbank-bench-$$" \
      --initial-cluster-state new \
      >"$dir/m$i.log" 2>&1 &
    ETCD_PIDS+=("$!")
  done
  echo "etcd: members m0 m1 m2 at $ETCD_ENDPOINTS, pids ${ETCD_PIDS[*]}" >&2
  local _
  for _ in $(seq 1 60); do
    for i in 0 1 2; do
      if ! kill -0 "${ETCD_PIDS[$i]}" 2>/dev/null; then
        echo "etcd member m$i exited (port in use?)" >&2
        etcd_logs "$dir"
        return 1
      fi
    done
    if etcd_healthy "${client[0]}" && etcd_healthy "${client[1]}" && etcd_healthy "${client[2]}"; then
      echo "etcd: cluster healthy" >&2
      return 0
    fi
    sleep 0.5
  done
  echo "etcd cluster not healthy after 30 s" >&2
  etcd_logs "$dir"
  return 1
}

# Stops the members one at a time: a leader stopping hands leadership to a
# live follower at once, but stalls for seconds if its followers stop with it.
etcd_stop() {
  local pid
  for pid in "${ETCD_PIDS[@]}"; do
    stop_pid "$pid" TERM 10
  done
  ETCD_PIDS=()
}

# True when the member at client URL $1 answers that it is healthy.
etcd_healthy() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS --max-time 2 "$1/health" 2>/dev/null | grep -q '"health":"true"'
  else
    node -e '
      fetch(process.argv[1] + "/health", { signal: AbortSignal.timeout(2000) })
        .then((r) => r.json()).then((j) => process.exit(j.health === "true" ? 0 : 1), () => process.exit(1));
    ' "$1"
  fi
}

# Prints the end of every member's log under $1 (when the cluster does not come up).
etcd_logs() {
  local i
  for i in 0 1 2; do
    echo "--- m$i ---" >&2
    tail -n 20 "$1/m$i.log" >&2 || true
  done
}

etcd_main() {
  local root main dir
  root="$(cd "$ETCD_SCRIPT_DIR/.." && pwd)"
  main="$root/dist/cli/main.js"
  if [[ ! -f "$main" ]]; then
    echo "$main is missing: run \"npm run build\" first" >&2
    exit 1
  fi
  dir="$(mktemp -d "${TMPDIR:-/tmp}/shardbank-etcd.XXXXXX")"
  # shellcheck disable=SC2064
  trap "etcd_stop; rm -rf '$dir'" EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  etcd_start "$dir" "${ETCD_BASE_PORT:-2379}" || exit 1
  node "$main" bench --etcd "$ETCD_ENDPOINTS" "$@"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  etcd_main "$@"
fi
