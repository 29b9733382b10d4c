#!/usr/bin/env bash
# Compares shardbank's partitioner with METIS's gpmetis on the transaction
# graphs of benchmark workloads, and prints a Markdown table.
#
#   npm run build && bench/partition-compare.sh
#
# For the `zipf` preset (Zipf 0.99, every transfer within its cluster), for
# Zipf 0.99 with 20% of transfers across clusters (bench's default share),
# and for `--affinity 90` (groups of 10 items spread over all clusters), it writes
# the graph of 10,000 transfers twice: with every item as a vertex (what the
# product partitions: the balance counts all items) and with only the items
# some transfer touched. Each graph goes to gpmetis (k-way, -ufactor 30,
# i.e. parts up to 1.03 x the fair share, as our --imbalance 0.03; once
# with its default single try and once with -ncuts 4, the number of runs
# ours takes) and to `shardbank partition`, with 3 and 5 parts. Both cuts
# and imbalances are measured by `shardbank partition --evaluate` on the
# .part files, so one piece of code counts for both sides; gpmetis's own
# "Edgecut" must agree, or the script stops. Times: ours is the partition
# call inside the process (wall, then the process's CPU during it, which a
# busy machine disturbs less), gpmetis's is its "Partitioning" (METIS time).
#
# Environment: TRANSFERS (10000), SEED (1, the workload seed and both
# partitioners' seed), PARTS ("3 5"). Installs Debian's metis package
# with apt-get when gpmetis is missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MAIN="$ROOT/dist/cli/main.js"
if [[ ! -f "$MAIN" ]]; then
  echo "$MAIN is missing: run \"npm run build\" first" >&2
  exit 1
fi
if ! command -v gpmetis >/dev/null 2>&1; then
  echo "gpmetis is missing: installing Debian's metis package" >&2
  apt-get install -y metis >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y metis >/dev/null; }
fi

TRANSFERS="${TRANSFERS:-10000}"
SEED="${SEED:-1}"
PARTS="${PARTS:-3 5}"
IMBALANCE=0.03
UFACTOR=30
DIR="$(mktemp -d "${TMPDIR:-/tmp}/shardbank-partition.XXXXXX")"
trap 'rm -rf "$DIR"' EXIT

# json FILE FIELD: one field of a one-line JSON object.
json() { node -e 'const o = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); const f = process.argv[2]; const v = o[f]; console.log(f === "imbalance" ? v.toFixed(3) : f.endsWith("Ms") ? Math.round(v) : v)' "$1" "$2"; }

# gpmetis_run GRAPH K NCUTS: partitions and prints "cut imbalance seconds", checking gpmetis's own edge cut against ours.
gpmetis_run() {
  local graph=$1 k=$2 ncuts=$3 log="$DIR/gpmetis.log" eval="$DIR/eval.json"
  gpmetis -ufactor="$UFACTOR" -seed="$SEED" -ncuts="$ncuts" "$graph" "$k" >"$log"
  node "$MAIN" partition "$graph" --parts "$k" --imbalance "$IMBALANCE" --evaluate "$graph.part.$k" --json >"$eval"
  local own cut
  own=$(sed -n 's/.*Edgecut: *\([0-9]*\).*/\1/p' "$log")
  cut=$(json "$eval" cut)
  if [[ "$own" != "$cut" ]]; then
    echo "gpmetis reports an edge cut of $own on $graph, we count $cut: the two do not read the graph alike" >&2
    exit 1
  fi
  echo "$cut $(json "$eval" imbalance) $(sed -n 's/.*Partitioning:[[:space:]]*\([0-9.]*\)[[:space:]]*sec.*/\1/p' "$log")"
}

echo "| graph of $TRANSFERS transfers | vertices | edges | k | cut: ours | gpmetis | gpmetis -ncuts 4 | ours / gpmetis | imbalance: ours | gpmetis | time (CPU): ours | gpmetis |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for workload in zipf zipf20 affinity; do
  case $workload in
    zipf) flags=(--preset zipf) ;;
    zipf20) flags=(--distribution zipf --skew 0.99 --cross-shard 20) ;;
    affinity) flags=(--affinity 90) ;;
  esac
  for vertices in all touched; do
    graph="$DIR/$workload-$vertices.graph"
    extra=()
    [[ $vertices == touched ]] && extra=(--touched-only)
    node "$MAIN" workload-graph "${flags[@]}" --transfers "$TRANSFERS" --seed "$SEED" "${extra[@]}" --out "$graph" 2>/dev/null
    read -r n m _ < <(grep -v '^%' "$graph" | head -1)
    for k in $PARTS; do
      read -r gcut gimb gtime < <(gpmetis_run "$graph" "$k" 1)
      read -r g4cut _ < <(gpmetis_run "$graph" "$k" 4)
      ours="$DIR/ours.json"
      node "$MAIN" partition "$graph" --parts "$k" --imbalance "$IMBALANCE" --seed "$SEED" --json >"$ours"
      cut=$(json "$ours" cut)
      ratio=$(node -e 'const [a, b] = process.argv.slice(1).map(Number); console.log(b === 0 ? (a === 0 ? "1.00" : "inf") : (a / b).toFixed(3))' "$cut" "$gcut")
      gms=$(node -e 'console.log(Math.round(Number(process.argv[1]) * 1000))' "$gtime")
      echo "| \`${flags[*]}\`, $vertices items | $n | $m | $k | $cut | $gcut | $g4cut | $ratio | $(json "$ours" imbalance) | $gimb | $(json "$ours" timeMs) ms ($(json "$ours" cpuMs)) | $gms ms |"
    done
  done
done
