#!/usr/bin/env bash
# shardbank side by side with PostgreSQL 15 (two synchronous standbys) and
# etcd (three members), in one window on this machine, under the same
# workload: accounts 1..9000 with 1,000,000 each, uniform intra-shard
# transfers of 1..10, the same seed, clients, duration and warm-up.
#
#   npm run build && bench/compare.sh            # about 5 minutes
#   bench/compare.sh --quick                     # a smoke run: about 2 minutes
#
# One system at a time, each alone on the machine:
#   1. PostgreSQL: a primary and standbys r1, r2 with
#      synchronous_standby_names = 'ANY 1 (r1, r2)' (bench/postgres.sh);
#      intra-shard transfers at each --clients count, then reads.
#   2. etcd: three members (bench/etcd.sh); the same runs.
#   3. shardbank: nine node processes, started afresh for each run; the same
#      runs, then 20% cross-shard at 64 clients, 100% cross-shard at 512 and
#      at 1 client, and nine idle nodes' CPU over --idle seconds.
# Then it prints the table (`shardbank compare-table`) on stdout and writes
# it, with every run's full report, to the JSON file. Progress and each run's
# one-line result go to stderr; each run's whole output is kept next to the
# JSON file (<json>.d/). Every server is on 127.0.0.1, in its own data
# directory in a temp dir, stopped by its pid at the end or on Ctrl-C.
# PostgreSQL 15 and etcd come from Debian's postgresql-15 and etcd-server,
# installed with apt-get when missing (as root).
#
# Options:
#   --duration S       seconds measured per run (default 10; --quick 3)
#   --warmup S         seconds of the same workload first, not counted (default 5; --quick 1)
#   --clients LIST     client counts for intra-shard transfers (default 1,16,64)
#   --read-clients N   clients for the reads row (default 64)
#   --idle S           seconds of idle nodes measured (default 10; --quick 3)
#   --seed N           workload seed (default 1)
#   --json FILE        where the JSON goes (default bench/results/compare-<date>.json)
#   --quick            short runs that prove the whole thing works; not figures to quote
#   --only LIST        only these systems: postgres,etcd,shardbank (default all)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MAIN="$ROOT/dist/cli/main.js"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
# shellcheck source=bench/postgres.sh
source "$ROOT/bench/postgres.sh"
# shellcheck source=bench/etcd.sh
source "$ROOT/bench/etcd.sh"

usage() { sed -n "2,/^set -euo/p" "${BASH_SOURCE[0]}" | sed "\$d; s/^# \{0,1\}//"; }
fail_usage() {
  echo "compare.sh: $1 (see --help)" >&2
  exit 2
}

DURATION="" WARMUP="" IDLE="" CLIENTS="1,16,64" READ_CLIENTS=64 SEED=1 JSON_OUT="" QUICK=0 ONLY="postgres,etcd,shardbank"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --duration | --warmup | --clients | --read-clients | --idle | --seed | --json | --only)
      [[ $# -ge 2 ]] || fail_usage "$1 needs a value"
      case "$1" in
        --duration) DURATION="$2" ;;
        --warmup) WARMUP="$2" ;;
        --clients) CLIENTS="$2" ;;
        --read-clients) READ_CLIENTS="$2" ;;
        --idle) IDLE="$2" ;;
        --seed) SEED="$2" ;;
        --json) JSON_OUT="$2" ;;
        --only) ONLY="$2" ;;
      esac
      shift 2
      ;;
    --quick) QUICK=1 && shift ;;
    -h | --help) usage && exit 0 ;;
    *) fail_usage "unknown option \"$1\"" ;;
  esac
done
if [[ "$QUICK" == 1 ]]; then
  DURATION="${DURATION:-3}" WARMUP="${WARMUP:-1}" IDLE="${IDLE:-3}"
else
  DURATION="${DURATION:-10}" WARMUP="${WARMUP:-5}" IDLE="${IDLE:-10}"
fi
for pair in "--duration:$DURATION" "--warmup:$WARMUP" "--idle:$IDLE" "--read-clients:$READ_CLIENTS" "--seed:$SEED"; do
  [[ "${pair#*:}" =~ ^[0-9]+$ ]] || fail_usage "${pair%%:*} takes a whole number, not \"${pair#*:}\""
done
((DURATION >= 1)) || fail_usage "--duration must be at least 1"
((IDLE >= 1)) || fail_usage "--idle must be at least 1"
((READ_CLIENTS >= 1)) || fail_usage "--read-clients must be at least 1"
[[ "$CLIENTS" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || fail_usage "--clients takes a list like 1,16,64, not \"$CLIENTS\""
IFS=, read -r -a CLIENT_LIST <<<"$CLIENTS"
[[ ",$ONLY," =~ ^(,(postgres|etcd|shardbank))+,$ ]] || fail_usage "--only takes some of postgres,etcd,shardbank, not \"$ONLY\""
wanted() { [[ ",$ONLY," == *",$1,"* ]]; }

if [[ ! -f "$MAIN" ]]; then
  echo "$MAIN is missing: run \"npm run build\" first" >&2
  exit 1
fi
if [[ -z "$JSON_OUT" ]]; then
  mkdir -p "$ROOT/bench/results"
  JSON_OUT="$ROOT/bench/results/compare-$(date +%Y%m%d-%H%M%S).json"
fi
LOGS="$JSON_OUT.d"
rm -rf "$LOGS"
mkdir -p "$LOGS"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/shardbank-compare.XXXXXX")"
cleanup() {
  pg_stop
  etcd_stop
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

MAX_CLIENTS="$READ_CLIENTS"
for c in "${CLIENT_LIST[@]}"; do ((c > MAX_CLIENTS)) && MAX_CLIENTS="$c"; done
FAILURES=0

# Writes the stand-in report of a run that left none: {system, options, error}.
write_missing() {
  node -e '
    const [file, system, preset, clients, error] = process.argv.slice(1);
    require("node:fs").writeFileSync(file, JSON.stringify({ system, options: { preset, clients: Number(clients) }, error }) + "\n");
  ' "$1" "$2" "$3" "$4" "$5"
}

# run_bench SYSTEM PRESET CLIENTS [bench options...]: one run, its report in
# $LOGS/SYSTEM-PRESET-cCLIENTS.json and its output in the .txt beside it.
run_bench() {
  local system="$1" preset="$2" clients="$3" name status=0
  shift 3
  name="$system-$preset-c$clients"
  printf '%-40s' "$system $preset, $clients clients" >&2
  node "$MAIN" bench --preset "$preset" --clients "$clients" --duration "$DURATION" --warmup "$WARMUP" --seed "$SEED" \
    --json "$LOGS/$name.json" "$@" >"$LOGS/$name.txt" 2>&1 || status=$?
  if [[ ! -s "$LOGS/$name.json" ]]; then
    write_missing "$LOGS/$name.json" "$system" "$preset" "$clients" "exit code $status, see $name.txt"
  fi
  if [[ "$status" -ne 0 ]]; then
    FAILURES=$((FAILURES + 1))
    echo " FAILED (exit code $status); the end of $LOGS/$name.txt:" >&2
    tail -n 8 "$LOGS/$name.txt" | sed 's/^/    /' >&2
  else
    grep -m1 '^throughput' "$LOGS/$name.txt" | sed 's/^throughput : / /' >&2 || echo >&2
  fi
}

# The same rows for a system that is up: intra-shard per client count, then reads.
run_common_rows() {
  local system="$1" c
  shift
  for c in "${CLIENT_LIST[@]}"; do run_bench "$system" intra "$c" "$@"; done
  run_bench "$system" reads "$READ_CLIENTS" "$@"
}

# Every row of a system that could not be started, as a run without a report.
mark_down() {
  local system="$1" why="$2" c
  FAILURES=$((FAILURES + 1))
  for c in "${CLIENT_LIST[@]}"; do write_missing "$LOGS/$system-intra-c$c.json" "$system" intra "$c" "$why"; done
  write_missing "$LOGS/$system-reads-c$READ_CLIENTS.json" "$system" reads "$READ_CLIENTS" "$why"
}

echo "compare: ${DURATION} s per run after a ${WARMUP} s warm-up, clients $CLIENTS, reads at $READ_CLIENTS, seed $SEED; results in $JSON_OUT" >&2

if wanted postgres; then
  echo "== PostgreSQL 15, primary + 2 synchronous standbys" >&2
  if pg_start "$WORK/pg" "$(free_port_base 3)" "$((MAX_CLIENTS + 20))"; then
    run_common_rows postgres --postgres "$PG_URL" --server-pids "$(IFS=,; echo "${PG_PIDS[*]}")"
  else
    mark_down postgres "PostgreSQL did not start"
  fi
  pg_stop
fi

if wanted etcd; then
  echo "== etcd, 3 members" >&2
  if etcd_start "$WORK/etcd" "$(free_port_base 6)"; then
    run_common_rows etcd --etcd "$ETCD_ENDPOINTS" --server-pids "$(IFS=,; echo "${ETCD_PIDS[*]}")"
  else
    mark_down etcd "etcd did not start"
  fi
  etcd_stop
fi

if wanted shardbank; then
  echo "== shardbank, 9 node processes (started afresh for each run)" >&2
  SB_PORT="$(free_port_base 9)"
  run_common_rows shardbank --base-port "$SB_PORT"
  run_bench shardbank cross20 64 --base-port "$SB_PORT"
  run_bench shardbank cross100 512 --base-port "$SB_PORT"
  run_bench shardbank cross100 1 --base-port "$SB_PORT"
  printf '%-40s' "shardbank idle, ${IDLE} s" >&2
  status=0
  # Settled as long as every other run is warmed up: start-up compiling is not idling.
  node "$MAIN" bench --idle "$IDLE" --warmup "$WARMUP" --base-port "$SB_PORT" --json "$LOGS/shardbank-idle.json" >"$LOGS/shardbank-idle.txt" 2>&1 || status=$?
  if [[ "$status" -ne 0 || ! -s "$LOGS/shardbank-idle.json" ]]; then
    FAILURES=$((FAILURES + 1))
    [[ -s "$LOGS/shardbank-idle.json" ]] || write_missing "$LOGS/shardbank-idle.json" shardbank idle 0 "exit code $status, see shardbank-idle.txt"
    echo " FAILED (exit code $status), see $LOGS/shardbank-idle.txt" >&2
  else
    sed -n 's/^idle *: .*CPU: / /p' "$LOGS/shardbank-idle.txt" >&2
  fi
fi

# When, where, with what: the table's header and the JSON's setup.
pg_version="$("$PG_BIN/postgres" --version 2>/dev/null | sed -E 's/^postgres \(PostgreSQL\) ([^ ]+).*/PostgreSQL \1/')" || pg_version=""
etcd_version="$(etcd --version 2>/dev/null | sed -nE 's/^etcd Version: (.*)/etcd \1/p')" || etcd_version=""
commit="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)" || commit=""
cpu_model="$(sed -nE 's/^model name\s*: (.*)/\1/p' /proc/cpuinfo 2>/dev/null | head -n 1)" || cpu_model=""
node -e '
  const [file, date, machine, postgres, etcd, commit, durationS, warmupS, seed, quick, clients, readClients] = process.argv.slice(1);
  const versions = Object.fromEntries(Object.entries({ postgres, etcd, node: process.version, shardbank: commit }).filter(([, v]) => v));
  const setup = { date, machine, versions, durationS: Number(durationS), warmupS: Number(warmupS), seed: Number(seed), quick: quick === "1", clients: clients.split(",").map(Number), readClients: Number(readClients) };
  require("node:fs").writeFileSync(file, JSON.stringify({ setup }) + "\n");
' "$LOGS/setup.json" "$(date '+%Y-%m-%d %H:%M %Z')" "$(nproc) cores${cpu_model:+ ($cpu_model)}, $(uname -sr)" \
  "$pg_version" "$etcd_version" "$commit" "$DURATION" "$WARMUP" "$SEED" "$QUICK" "$CLIENTS" "$READ_CLIENTS"

node "$MAIN" compare-table "$LOGS" --json "$JSON_OUT"
echo "compare: the table and every run's report are in $JSON_OUT; each run's output in $LOGS/" >&2
if [[ "$FAILURES" -gt 0 ]]; then
  echo "compare: $FAILURES run(s) failed (see above)" >&2
  exit 1
fi
