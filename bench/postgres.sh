#!/usr/bin/env bash
# Runs `shardbank bench` against a local PostgreSQL 15 primary with two
# synchronous standbys, for comparing shardbank with PostgreSQL under the same
# workload.
#
#   npm run build && bench/postgres.sh --preset intra --clients 16
#
# Starts three servers on 127.0.0.1, each with its own data directory in a
# fresh temp dir: the primary on port P and the standbys r1 and r2 on P+1
# and P+2 (P is free port picked at random; PG_BASE_PORT=P sets it). The
# primary has `synchronous_standby_names = 'ANY 1 (r1, r2)'`: a commit waits
# until its WAL is flushed on the primary and on one standby, a majority of
# three, like a Paxos group. fsync, full_page_writes and synchronous_commit
# are on (PostgreSQL's defaults, stated anyway). Once both standbys stream as
# synchronous candidates it runs `shardbank bench --postgres <url>` with the
# arguments given here; on exit it stops the three servers by their pids
# (fast shutdown) and removes the temp dir.
#
# Needs PostgreSQL 15's server programs (PG_BIN, default
# /usr/lib/postgresql/15/bin; Debian's postgresql-15, which root gets
# installed with apt-get when it is missing). PostgreSQL does not run as
# root: as root the servers run as the user PG_USER (default postgres, which
# the Debian package creates).
#
# Sourced (bench/compare.sh does), it only defines pg_start and pg_stop.
set -euo pipefail

PG_SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=bench/lib.sh
source "$PG_SCRIPT_DIR/lib.sh"

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_USER="${PG_USER:-postgres}"
PG_SUPERUSER=shardbank
PG_PIDS=()
PG_AS=()
PG_URL=""

# The command prefix that runs a program as the user the servers run as:
# PG_USER when root (PostgreSQL refuses to run as root), else nothing.
pg_owner_prefix() {
  PG_AS=()
  if [[ "$(id -u)" -eq 0 ]]; then
    PG_AS=(env "HOME=$1" setpriv --reuid="$PG_USER" --regid="$(id -g "$PG_USER")" --init-groups --)
  fi
}

# psql against the server on port $1, one query $2, unaligned output.
pg_query() {
  "$PG_BIN/psql" -X -A -t -q -h 127.0.0.1 -p "$1" -U "$PG_SUPERUSER" -d postgres -c "$2"
}

# Starts postgres on data directory $1, logging to $1.log; appends its pid
# to PG_PIDS (the subshell execs it, so $! is the server's own pid).
pg_launch() {
  (cd "$(dirname "$1")" && exec "${PG_AS[@]}" "$PG_BIN/postgres" -D "$1" >"$1.log" 2>&1) &
  PG_PIDS+=("$!")
}

# Waits until the server on port $2 (pid $1, log $3) accepts connections.
pg_wait_ready() {
  local _
  for _ in $(seq 1 120); do
    if ! kill -0 "$1" 2>/dev/null; then
      echo "postgres on port $2 exited; the end of $3:" >&2
      tail -n 20 "$3" >&2 || true
      return 1
    fi
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$2" && return 0
    sleep 0.25
  done
  echo "postgres on port $2 not ready after 30 s; the end of $3:" >&2
  tail -n 20 "$3" >&2 || true
  return 1
}

# Starts the primary and its two synchronous standbys under $1, the primary
# on port $2, allowing $3 connections; sets PG_PIDS (primary, r1, r2) and
# PG_URL, and returns once both standbys stream as synchronous candidates.
pg_start() {
  local dir="$1" port="$2" max_connections="$3"
  if [[ ! -x "$PG_BIN/postgres" ]]; then
    if [[ "$(id -u)" -ne 0 ]]; then
      echo "PostgreSQL 15 is not installed ($PG_BIN/postgres). On Debian/Ubuntu: sudo apt-get install postgresql-15" >&2
      return 2
    fi
    echo "PostgreSQL 15 is not installed: installing Debian package postgresql-15 with apt-get" >&2
    apt_install postgresql-15 >&2 && [[ -x "$PG_BIN/postgres" ]] || { echo "could not install postgresql-15 ($PG_BIN/postgres)" >&2; return 2; }
  fi
  mkdir -p "$dir"
  if [[ "$(id -u)" -eq 0 ]]; then
    if ! id "$PG_USER" >/dev/null 2>&1; then
      echo "PostgreSQL does not run as root, and there is no user $PG_USER to run it as (set PG_USER)" >&2
      return 2
    fi
    # The servers' user must reach the directory through its (temporary, private) parent.
    chmod o+x "$(dirname "$dir")"
    chown "$PG_USER" "$dir"
  fi
  pg_owner_prefix "$dir"
  if ! "${PG_AS[@]}" test -w "$dir"; then
    echo "user $PG_USER cannot write to $dir (is a directory above it private?): set TMPDIR to a directory it can reach" >&2
    return 2
  fi
  echo "postgres: initdb in $dir/primary" >&2
  "${PG_AS[@]}" "$PG_BIN/initdb" -D "$dir/primary" -U "$PG_SUPERUSER" --auth=trust -E UTF8 --no-instructions >"$dir/initdb.log" 2>&1 ||
    { echo "initdb failed:" >&2; tail -n 20 "$dir/initdb.log" >&2; return 1; }
  cat >>"$dir/primary/postgresql.conf" <<EOF

# shardbank bench: a primary with two synchronous standbys on loopback
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = $max_connections
fsync = on
full_page_writes = on
synchronous_commit = on
wal_level = replica
max_wal_senders = 8
synchronous_standby_names = 'ANY 1 (r1, r2)'
EOF
  pg_launch "$dir/primary"
  pg_wait_ready "${PG_PIDS[0]}" "$port" "$dir/primary.log" || return 1
  local i name
  for i in 1 2; do
    name="r$i"
    "${PG_AS[@]}" "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$port" -U "$PG_SUPERUSER" -D "$dir/$name" -X stream -c fast >"$dir/$name-basebackup.log" 2>&1 ||
      { echo "pg_basebackup for $name failed:" >&2; tail -n 20 "$dir/$name-basebackup.log" >&2; return 1; }
    "${PG_AS[@]}" touch "$dir/$name/standby.signal"
    cat >>"$dir/$name/postgresql.conf" <<EOF

# standby $name of the primary on port $port
port = $((port + i))
primary_conninfo = 'host=127.0.0.1 port=$port user=$PG_SUPERUSER application_name=$name'
EOF
    pg_launch "$dir/$name"
    pg_wait_ready "${PG_PIDS[$i]}" "$((port + i))" "$dir/$name.log" || return 1
  done
  PG_URL="postgres://$PG_SUPERUSER@127.0.0.1:$port/postgres"
  echo "postgres: primary on port $port (pid ${PG_PIDS[0]}), standbys r1 on $((port + 1)) (pid ${PG_PIDS[1]}) and r2 on $((port + 2)) (pid ${PG_PIDS[2]})" >&2
  local _ streaming
  for _ in $(seq 1 120); do
    streaming="$(pg_query "$port" "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND sync_state IN ('sync', 'quorum')" 2>/dev/null || echo 0)"
    if [[ "$streaming" == "2" ]]; then
      echo "postgres: r1 and r2 streaming, commits wait for ANY 1 (r1, r2)" >&2
      return 0
    fi
    sleep 0.25
  done
  echo "the standbys did not start streaming in 30 s; the end of their logs:" >&2
  tail -n 10 "$dir/r1.log" "$dir/r2.log" >&2 || true
  return 1
}

# Stops the servers by their pids, the primary first, each with a fast
# shutdown (SIGINT: sessions ended, a clean checkpoint), then by force.
pg_stop() {
  local pid
  for pid in "${PG_PIDS[@]}"; do
    stop_pid "$pid" INT 30
  done
  PG_PIDS=()
}

# The largest `--clients N` among the arguments (for max_connections), or 64.
pg_clients_in() {
  local max=64 next=""
  for arg in "$@"; do
    if [[ "$next" == 1 && "$arg" =~ ^[0-9]+$ ]] && ((arg > max)); then max="$arg"; fi
    next=""
    [[ "$arg" == --clients ]] && next=1
    [[ "$arg" =~ ^--clients=([0-9]+)$ ]] && ((BASH_REMATCH[1] > max)) && max="${BASH_REMATCH[1]}"
  done
  echo "$max"
}

pg_main() {
  local root main dir port
  root="$(cd "$PG_SCRIPT_DIR/.." && pwd)"
  main="$root/dist/cli/main.js"
  if [[ ! -f "$main" ]]; then
    echo "$main is missing: run \"npm run build\" first" >&2
    exit 1
  fi
  dir="$(mktemp -d "${TMPDIR:-/tmp}/shardbank-postgres.XXXXXX")"
  # shellcheck disable=SC2064
  trap "pg_stop; rm -rf '$dir'" EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  port="${PG_BASE_PORT:-$(free_port_base 3)}"
  pg_start "$dir/pg" "$port" "$(($(pg_clients_in "$@") + 20))" || exit 1
  node "$main" bench --postgres "$PG_URL" "$@"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  pg_main "$@"
fi
