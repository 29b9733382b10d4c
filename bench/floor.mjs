// What the primitives a one-client transfer is made of cost on this machine,
// with none of shardbank's code in the way: a TLS round trip over loopback,
// a LevelDB batch fsynced, and the smallest commit a replicated log can do in
// Node.js. That last one is the floor under the one-client rows of
// bench/compare.sh: no design written in Node.js over TLS and LevelDB commits
// a request faster on this machine.
//
//   npm run build && node bench/floor.mjs            # about 20 s
//   node bench/floor.mjs --count 3000 --json
//
// Shapes, each with one request in flight at a time (128-byte messages):
//   tls echo        the client and one process that answers at once
//   level sync      a LevelDB batch of one 128-byte value, fsynced, in this process
//   vote            one process that fsyncs each message to LevelDB before it
//                   answers (a replica's vote)
//   commit          client -> leader; the leader sends the message to two
//                   followers and fsyncs its own copy meanwhile; a follower
//                   fsyncs and answers; the leader answers the client once
//                   its own write and one follower's answer are in (a
//                   majority of three). Four TLS hops, two fsyncs side by
//                   side: the shape of a shardbank transfer inside a cluster
//                   with everything but the I/O taken away.
// Each line gives the latency at the client (p50, p99, in ms) and the CPU
// every process of the shape spent per request (user and system, in µs).
//
// Options: --count N requests per shape after --warm W (default 2000, 500),
// --json.
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..');
const SIZE = 128;

async function load(rel) {
  return import(pathToFileURL(join(ROOT, rel)).href);
}

function cpuMicros() {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** Reads fixed-size messages off a socket. */
function onMessages(socket, fn) {
  let buf = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    while (buf.length >= SIZE) {
      const m = buf.subarray(0, SIZE);
      buf = buf.subarray(SIZE);
      fn(m);
    }
  });
}

async function openLevel(dir) {
  const { ClassicLevel } = await import('classic-level');
  const db = new ClassicLevel(dir, { valueEncoding: 'view' });
  await db.open();
  let n = 0;
  return {
    put: (value) => db.batch([{ type: 'put', key: String(n++).padStart(12, '0'), value }], { sync: true }),
    close: () => db.close(),
  };
}

/* ---------------- child processes: a replica (echo or vote) and a leader ---------------- */

async function child(role) {
  const { tlsOpts, dir } = JSON.parse(process.env.FLOOR_CHILD);
  const db = role === 'echo' ? null : await openLevel(join(dir, `${role}-${process.pid}`));
  let followers = [];
  if (role === 'leader') {
    followers = await Promise.all(JSON.parse(process.env.FLOOR_FOLLOWERS).map((port) => connect(port, tlsOpts)));
  }
  const server = tls.createServer({ ...tlsOpts, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' }, (socket) => {
    socket.setNoDelay(true);
    if (role === 'echo') return onMessages(socket, (m) => socket.write(m));
    if (role === 'vote') return onMessages(socket, (m) => void db.put(m).then(() => socket.write(m)));
    // leader: one request at a time from its client
    onMessages(socket, (m) => {
      let votes = 0;
      const vote = () => {
        if (++votes === 2) socket.write(m);
      };
      for (const f of followers) {
        f.waiting.push(vote);
        f.write(m);
      }
      void db.put(m).then(vote);
    });
  });
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
  process.on('message', (msg) => {
    if (msg === 'cpu') process.send({ cpu: cpuMicros() });
  });
  // A follower answers its messages in order: each answer is the vote of the oldest request it has not answered.
  for (const f of followers) {
    f.waiting = [];
    onMessages(f, () => f.waiting.shift()());
  }
}

function connect(port, tlsOpts) {
  return new Promise((res, rej) => {
    const s = tls.connect({ ...tlsOpts, host: '127.0.0.1', port, minVersion: 'TLSv1.3', checkServerIdentity: () => undefined }, () => {
      s.setNoDelay(true);
      res(s);
    });
    s.once('error', rej);
  });
}

function spawnChild(role, env) {
  const c = fork(fileURLToPath(import.meta.url), ['--child', role], { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((res, rej) => {
    c.once('message', (m) => res({ proc: c, port: m.port }));
    c.once('exit', (code) => rej(new Error(`${role} exited with ${code}`)));
  });
}

function childCpu(c) {
  return new Promise((res) => {
    c.proc.once('message', (m) => res(m.cpu));
    c.proc.send('cpu');
  });
}

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function measure(name, once, procs, { count, warm }) {
  for (let i = 0; i < warm; i++) await once();
  const before = await Promise.all(procs.map(childCpu));
  const c0 = cpuMicros();
  const lat = [];
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await once();
    lat.push(performance.now() - t);
  }
  const own = cpuMicros() - c0;
  const after = await Promise.all(procs.map(childCpu));
  const cpu = own + after.reduce((a, x, i) => a + x - before[i], 0);
  lat.sort((a, b) => a - b);
  return { shape: name, p50Ms: pct(lat, 50), p99Ms: pct(lat, 99), cpuMicrosPerRequest: cpu / count, requests: count };
}

function roundTrip(socket) {
  const payload = Buffer.alloc(SIZE, 7);
  let waiting = null;
  onMessages(socket, () => waiting?.());
  return () =>
    new Promise((res) => {
      waiting = res;
      socket.write(payload);
    });
}

async function main(argv) {
  const o = { count: 2000, warm: 500, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--count') o.count = Number(argv[++i]);
    else if (a === '--warm') o.warm = Number(argv[++i]);
    else if (a === '--json') o.json = true;
    else {
      console.error(`floor.mjs: unknown option ${a} (see the header of bench/floor.mjs)`);
      process.exit(2);
    }
  }
  if (!(Number.isInteger(o.count) && o.count > 0 && Number.isInteger(o.warm) && o.warm >= 0)) {
    console.error('floor.mjs: --count must be a positive integer and --warm a non-negative one');
    process.exit(2);
  }
  const dir = mkdtempSync(join(tmpdir(), 'shardbank-floor-'));
  const children = [];
  try {
    const { createAuthority } = await load('dist/cli/authority.js');
    const { securityOf } = await load('dist/cli/credentials.js');
    const ca = join(dir, 'tls');
    const { cluster } = await createAuthority(ca, { certificates: [{ role: 'peer', name: 'n1' }] });
    const { credentials } = securityOf({ mode: 'tls', dir: ca, cluster }, 'n1', 'peer');
    const tlsOpts = { ca: credentials.ca, cert: credentials.cert, key: credentials.key };
    const env = { FLOOR_CHILD: JSON.stringify({ tlsOpts, dir }) };
    const results = [];

    const echo = await spawnChild('echo', env);
    children.push(echo);
    results.push(await measure('tls echo', roundTrip(await connect(echo.port, tlsOpts)), [echo], o));

    const db = await openLevel(join(dir, 'local'));
    const value = Buffer.alloc(SIZE, 1);
    results.push(await measure('level sync', () => db.put(value), [], o));
    await db.close();

    const vote = await spawnChild('vote', env);
    children.push(vote);
    results.push(await measure('vote', roundTrip(await connect(vote.port, tlsOpts)), [vote], o));

    const f1 = await spawnChild('vote', env);
    const f2 = await spawnChild('vote', env);
    children.push(f1, f2);
    const leader = await spawnChild('leader', { ...env, FLOOR_FOLLOWERS: JSON.stringify([f1.port, f2.port]) });
    children.push(leader);
    results.push(await measure('commit', roundTrip(await connect(leader.port, tlsOpts)), [leader, f1, f2], o));

    if (o.json) console.log(JSON.stringify({ date: new Date().toISOString(), node: process.version, ...o, results }, null, 2));
    else {
      console.log(`one request at a time, ${o.count} after ${o.warm} not counted; Node ${process.version}, TLS 1.3 on 127.0.0.1, LevelDB fsync on`);
      console.log('shape        p50 ms  p99 ms  CPU µs/request (all processes)');
      for (const r of results) console.log(`${r.shape.padEnd(12)} ${r.p50Ms.toFixed(3).padStart(6)}  ${r.p99Ms.toFixed(3).padStart(6)}  ${Math.round(r.cpuMicrosPerRequest).toString().padStart(6)}`);
    }
  } finally {
    for (const c of children) c.proc.kill();
    rmSync(dir, { recursive: true, force: true });
  }
  process.exit(0);
}

const at = process.argv.indexOf('--child');
if (at >= 0) await child(process.argv[at + 1]);
else await main(process.argv.slice(2));
