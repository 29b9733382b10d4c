/**
 * CPU time of other processes, read from Linux's /proc: what a PostgreSQL or
 * etcd server spent over a bench run, to set beside shardbank's node CPU.
 * A PostgreSQL server is a tree (the postmaster forks a backend per
 * connection, a WAL sender per standby), so a pid counts with all its
 * descendants. Time of processes that ended between two readings is lost,
 * which is why the bench opens its connections before the first reading.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat's times (USER_HZ, 100 on Linux). */
const TICKS_PER_S = 100;

export interface ProcStat {
  pid: number;
  ppid: number;
  /** utime + stime, in ms. */
  cpuMs: number;
}

/**
 * One /proc/<pid>/stat line: the command name is in parentheses and may hold
 * spaces and parentheses itself, so fields are counted after the last ')'.
 */
export function parseProcStat(line: string): ProcStat | null {
  const close = line.lastIndexOf(')');
  if (close < 0) return null;
  const pid = Number.parseInt(line, 10);
  // After ") ": state (field 3), ppid (4), ..., utime (14), stime (15).
  const rest = line.slice(close + 2).split(' ');
  const ppid = Number(rest[1]);
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (![pid, ppid, utime, stime].every(Number.isFinite)) return null;
  return { pid, ppid, cpuMs: ((utime + stime) * 1000) / TICKS_PER_S };
}

/** CPU ms of `roots` and all their descendants, among `stats`. */
export function treeCpuMs(stats: ProcStat[], roots: number[]): number {
  const children = new Map<number, ProcStat[]>();
  for (const s of stats) {
    const list = children.get(s.ppid);
    if (list) list.push(s);
    else children.set(s.ppid, [s]);
  }
  const byPid = new Map(stats.map((s) => [s.pid, s]));
  const seen = new Set<number>();
  const stack = roots.filter((p) => byPid.has(p));
  let total = 0;
  while (stack.length > 0) {
    const pid = stack.pop()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    total += byPid.get(pid)!.cpuMs;
    for (const c of children.get(pid) ?? []) stack.push(c.pid);
  }
  return total;
}

/** Every process's stat now; empty where there is no /proc. */
export function readProcStats(): ProcStat[] {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((n) => /^\d+$/.test(n));
  } catch {
    return [];
  }
  const out: ProcStat[] = [];
  for (const pid of pids) {
    try {
      const s = parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      if (s) out.push(s);
    } catch {
      // The process ended between the listing and the read.
    }
  }
  return out;
}

/** A reading of the trees under `roots`: call `since()` later for the CPU ms spent in between. */
export function cpuMeter(roots: number[]): { since(): number } {
  const start = treeCpuMs(readProcStats(), roots);
  return { since: () => Math.max(0, treeCpuMs(readProcStats(), roots) - start) };
}
