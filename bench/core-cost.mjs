// CPU per committed transfer of the nodes themselves, measured in one
// process, where nine node processes on a shared 2-core machine drift by a
// third from run to run. Every node of the run lives in this process with
// its actors, its NodeHost and its log; closed-loop clients keep `--clients`
// transfers in flight, and the figure is this process's CPU time (user and
// system) over the transfers committed in the measured seconds.
//
//   npm run build
//   node bench/core-cost.mjs                          # intra, memory, 64 clients
//   node bench/core-cost.mjs --mode tcp --clients 8   # over loopback TCP, logs on disk
//   node bench/core-cost.mjs --mode cross --clients 256
//   node bench/core-cost.mjs --roots ../old,. --rounds 3   # two builds, alternating
//
// Modes:
//   memory  three replicas of cluster 1; envelopes encoded and decoded as on
//           the wire, handed over on the next turn of the event loop; logs
//           in memory. The protocol's own cost: actors, state, codec.
//   tcp     the same three replicas over plaintext TCP on 127.0.0.1 (free
//           ports), with LevelDB logs in a temporary directory, fsync on. Adds
//           the turn's I/O: sockets, framing, the log write.
//   cross   nine nodes (3 x 3) in memory, every transfer between two clusters
//           (2PC over Paxos).
//
// Options: --mode M, --clients N (64), --seconds S measured (6), --warmup S
// (2), --root DIR (the build to load, default this checkout), --roots A,B
// with --rounds K (each build in turn, K rounds, one child process per run,
// medians printed), --json.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));

function parseArgs(argv) {
  const o = { mode: 'memory', clients: 64, seconds: 6, warmup: 2, root: resolve(HERE, '..'), roots: null, rounds: 3, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) fail(`${a} needs a value`);
      return argv[++i];
    };
    const positive = (v) => {
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0) fail(`${a} must be a positive number, got "${v}"`);
      return n;
    };
    if (a === '--mode') o.mode = value();
    else if (a === '--clients') o.clients = Math.floor(positive(value()));
    else if (a === '--seconds') o.seconds = positive(value());
    else if (a === '--warmup') o.warmup = positive(value());
    else if (a === '--root') o.root = resolve(value());
    else if (a === '--roots') o.roots = value().split(',').map((r) => resolve(r));
    else if (a === '--rounds') o.rounds = Math.floor(positive(value()));
    else if (a === '--json') o.json = true;
    else if (a === '-h' || a === '--help') {
      console.log('usage: node bench/core-cost.mjs [--mode memory|tcp|cross] [--clients N] [--seconds S] [--warmup S] [--root DIR | --roots A,B --rounds K] [--json]');
      process.exit(0);
    } else fail(`unknown option "${a}"`);
  }
  if (!['memory', 'tcp', 'cross'].includes(o.mode)) fail(`--mode must be memory, tcp or cross, got "${o.mode}"`);
  return o;
}

function fail(why) {
  console.error(`core-cost: ${why} (see --help)`);
  process.exit(2);
}

const freePort = () =>
  new Promise((res, rej) => {
    const s = net.createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });

/** One run in this process: returns { committed, cpuUs, seconds }. */
async function measure(o) {
  const load = (p) => import(join(o.root, 'dist', p));
  const { NodeHost } = await load('runtime/host.js');
  const { makeTopology, clusterNodes, clusterOfItem, initialLeader } = await load('protocol/topology.js');
  const { shardbank } = await load('protocol/messages.js');
  const { EventLog } = await load('store/eventlog.js');
  const topology = makeTopology({});
  const perCluster = topology.items / topology.clusters;
  const ids = o.mode === 'cross' ? topology.nodes.map((n) => n.id) : [1, 2, 3];
  const waiting = new Map();
  const answer = (env) => {
    const w = waiting.get(env.reply?.client);
    if (w) {
      waiting.delete(env.reply.client);
      w(env);
    }
  };
  const hosts = [];
  const closers = [];
  let dir = null;
  let sendRequest;
  if (o.mode === 'tcp') {
    const { TcpTransport } = await load('protocol/tcp.js');
    dir = mkdtempSync(join(tmpdir(), 'shardbank-core-cost-'));
    const ports = new Map();
    for (const id of ids) ports.set(id, await freePort());
    const addresses = (n) => (ports.has(n) ? { host: '127.0.0.1', port: ports.get(n) } : undefined);
    for (const id of ids) {
      const transport = new TcpTransport({ self: { node: id }, addresses, isMember: (n) => ids.includes(n), listen: { host: '127.0.0.1', port: ports.get(id) }, maxFrameBytes: 1 << 20, tuning: topology.tuning, log: () => {} });
      const host = new NodeHost({ topology, node: id, transport, log: EventLog.onDisk(join(dir, `n${id}`)), logger: () => {}, testCluster: true, turnBudgetMs: topology.tuning.turnBudgetMs });
      await host.start();
      await transport.start();
      hosts.push(host);
      closers.push(() => host.stop());
    }
    const client = new TcpTransport({ self: { client: 'core-cost' }, addresses, maxFrameBytes: 1 << 20, log: () => {} });
    client.onEnvelope(answer);
    closers.push(() => client.close());
    sendRequest = (to, env) => client.send(Object.assign({ to }, env));
  } else {
    // The wire in memory: every envelope encoded, then decoded on the next turn of the event loop.
    const handlers = new Map();
    let queue = [];
    let scheduled = false;
    const deliver = () => {
      scheduled = false;
      const q = queue;
      queue = [];
      for (const [to, bytes] of q) {
        const env = shardbank.Envelope.decode(bytes);
        if (typeof to === 'number') handlers.get(to)?.(env);
        else answer(env);
      }
    };
    const post = (to, env) => {
      queue.push([to, shardbank.Envelope.encode(env).finish()]);
      if (!scheduled) {
        scheduled = true;
        setImmediate(deliver);
      }
    };
    for (const id of ids) {
      const transport = {
        send: (env) => post(env.to ? env.to : 'client', env),
        flush() {},
        onEnvelope: (h) => handlers.set(id, h),
        close: async () => {},
      };
      const host = new NodeHost({ topology, node: id, transport, log: EventLog.inMemory(), logger: () => {}, testCluster: true });
      await host.start();
      hosts.push(host);
      closers.push(() => host.stop());
    }
    sendRequest = (to, env) => post(to, env);
  }
  for (const host of hosts) await host.admin({ flush: { leader: initialLeader(topology, host.node), set: 1, initialBalance: 1_000_000 } }, '');
  await new Promise((r) => setTimeout(r, 300));

  let committed = 0;
  let stop = false;
  const loops = [];
  for (let k = 0; k < o.clients; k++) {
    loops.push(
      (async () => {
        const name = `core-cost/${k}`;
        for (let ts = 1; !stop; ts++) {
          // Each client its own pair of items, so that no lock is contended.
          const offset = 1 + ((k * 2 + ts * 2 * o.clients) % (perCluster - 1));
          const from = o.mode === 'cross' ? k % topology.clusters : 0;
          const to = o.mode === 'cross' ? (from + 1) % topology.clusters : 0;
          const sender = from * perCluster + offset;
          const receiver = to * perCluster + offset + (o.mode === 'cross' ? 0 : 1);
          const reply = new Promise((r) => waiting.set(name, r));
          sendRequest(clusterNodes(topology, clusterOfItem(topology, sender))[0], { fromClient: name, request: { command: { client: name, timestamp: ts, transfer: { sender, receiver, amount: 1 } } } });
          const r = await Promise.race([reply, new Promise((res) => setTimeout(() => res(null), 3000))]);
          if (r?.reply?.status === shardbank.Status.COMMITTED) committed++;
        }
      })(),
    );
  }
  await new Promise((r) => setTimeout(r, o.warmup * 1000));
  const before = committed;
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, o.seconds * 1000));
  const used = process.cpuUsage(cpu);
  const seconds = (performance.now() - t0) / 1000;
  const n = committed - before;
  stop = true;
  for (const close of closers) await Promise.resolve(close()).catch(() => {});
  if (dir) rmSync(dir, { recursive: true, force: true });
  return { committed: n, seconds, cpuUs: used.user + used.system, userUs: used.user, systemUs: used.system };
}

function line(root, r) {
  const per = r.committed > 0 ? r.cpuUs / r.committed : NaN;
  return `${root.padEnd(28)} ${String(Math.round(r.committed / r.seconds)).padStart(7)}/s  ${per.toFixed(0).padStart(6)} µs of CPU per commit (user ${(r.userUs / r.committed).toFixed(0)}, system ${(r.systemUs / r.committed).toFixed(0)})`;
}

const o = parseArgs(process.argv.slice(2));
if (!o.roots) {
  const r = await measure(o);
  if (r.committed === 0) {
    console.error('core-cost: nothing committed in the measured seconds');
    process.exit(1);
  }
  console.log(o.json ? JSON.stringify(r) : line(o.root, r));
  process.exit(0);
}
console.log(`mode ${o.mode}, ${o.clients} clients, ${o.seconds} s after ${o.warmup} s; ${o.rounds} rounds, builds in turn, one process each`);
const results = new Map(o.roots.map((r) => [r, []]));
for (let round = 1; round <= o.rounds; round++) {
  for (const root of o.roots) {
    const args = [fileURLToPath(import.meta.url), '--root', root, '--mode', o.mode, '--clients', String(o.clients), '--seconds', String(o.seconds), '--warmup', String(o.warmup), '--json'];
    const child = spawnSync(process.execPath, args, { encoding: 'utf8' });
    if (child.status !== 0) {
      console.error(`core-cost: the run of ${root} failed (exit ${child.status}): ${child.stderr.trim()}`);
      process.exit(1);
    }
    const r = JSON.parse(child.stdout.trim().split('\n').pop());
    results.get(root).push(r);
    console.log(`round ${round}  ${line(root, r)}`);
  }
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
console.log('medians:');
for (const [root, rs] of results) {
  console.log(`  ${root.padEnd(28)} ${median(rs.map((r) => r.cpuUs / r.committed)).toFixed(0).padStart(6)} µs of CPU per commit, ${median(rs.map((r) => r.committed / r.seconds)).toFixed(0)}/s`);
}
