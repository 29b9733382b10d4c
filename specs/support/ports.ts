import { readFileSync } from 'node:fs';
import net from 'node:net';

/**
 * The ports the kernel hands out as the local end of outgoing connections
 * (Linux's ip_local_port_range; 32768..60999 by default). A node that
 * restarts must find its port free, and one that some connection took as
 * its source port in the meantime is not.
 */
function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(lo) && Number.isInteger(hi)) return [lo!, hi!];
  } catch {
    // Not Linux: the IANA dynamic range.
  }
  return [49152, 65535];
}

/**
 * A run of `count` consecutive free ports on 127.0.0.1, so parallel runs
 * (and the user's own cluster on 7101..) don't clash, below the ephemeral
 * range (or above it, where it leaves no room below).
 */
export async function freePortRange(count: number): Promise<number> {
  const [lo, hi] = ephemeralRange();
  // Below the ephemeral range from 20000, else above it, else anywhere below it from 1024.
  const ranges: [number, number][] = [[20000, lo - count], [hi + 1, 65536 - count], [1024, lo - count]];
  const [from, to] = ranges.find(([a, b]) => b - a >= 100) ?? [20000, 60000];
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = from + Math.floor(Math.random() * (to - from));
    const servers: net.Server[] = [];
    let ok = true;
    for (let i = 0; i < count && ok; i++) {
      const s = net.createServer();
      ok = await new Promise<boolean>((resolve) => {
        s.once('error', () => resolve(false));
        s.listen(base + i, '127.0.0.1', () => resolve(true));
      });
      if (ok) servers.push(s);
    }
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    if (ok) return base;
  }
  throw new Error('no free port range on 127.0.0.1');
}
