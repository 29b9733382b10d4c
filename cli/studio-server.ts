/**
 * The studio's HTTP server on 127.0.0.1: the page and its scripts (from the
 * package's studio/ folder, nothing from the network), the charts, the live
 * cluster as Server-Sent Events, replay sessions, and the bench plot.
 *
 * Every request that goes wrong is answered with `{ error }` and a status;
 * the server itself keeps serving.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseNodeName } from '../protocol/messages.js';
import { BenchFileError, parseBenchReport } from './bench-samples.js';
import type { LiveCluster, WatchMode } from './studio-live.js';
import type { LiveOps } from './studio-ops.js';
import { diffLogs, logsIn, ReplayLog } from './studio-replay.js';
import type { DrawnChart } from './studio-charts.js';
import { ReplayError, seqArg, txArg } from './replay.js';

const HERE = dirname(fileURLToPath(import.meta.url));
/** The page's own files: <package>/studio (this file runs from <package>/dist/cli). */
export const ASSETS = resolve(HERE, '..', '..', 'studio');
const MAIN = join(HERE, 'main.js');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
};

const BODY_MAX = 16 * 2 ** 20;
/** Replay sessions kept at once; the oldest is dropped past this. */
const REPLAYS_MAX = 16;

export interface StudioServerOptions {
  /** The charts (laid out while the server already listens: a port in use is told at once). */
  charts: Promise<DrawnChart[]>;
  /** What the page says about the cluster: its nodes and clusters, and whether the studio started it. */
  info: Record<string, unknown>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class StudioServer {
  private readonly server: Server;
  private readonly streams = new Set<ServerResponse>();
  private readonly replays = new Map<string, ReplayLog>();
  private nextReplay = 1;
  private bench: ChildProcess | null = null;
  private benchOutput = '';
  /** null: no cluster (charts, replay and bench files only). */
  private live: LiveCluster | null = null;
  private ops: LiveOps | null = null;
  /** How a bench started from the page connects: the cluster's authority (--tls DIR) or --plaintext. */
  private securityArgs: string[] = [];
  /** A topology file a bench started from the page can use with --connect. */
  private configPath: string | null = null;
  url = '';

  constructor(private readonly opts: StudioServerOptions) {
    this.server = createServer((req, res) => {
      this.route(req, res).catch((err: unknown) => this.fail(res, err));
    });
  }

  /** Listens on 127.0.0.1:port (0: any free port); rejects with a one-line reason. */
  listen(port: number): Promise<string> {
    return new Promise((resolvePromise, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        const why = err.code === 'EADDRINUSE' ? `port ${port} is in use` : err.code === 'EACCES' ? `port ${port} is not allowed (EACCES)` : err.message;
        reject(new Error(why));
      };
      this.server.once('error', onError);
      this.server.listen(port, '127.0.0.1', () => {
        this.server.off('error', onError);
        const addr = this.server.address();
        const actual = typeof addr === 'object' && addr ? addr.port : port;
        this.url = `http://127.0.0.1:${actual}/`;
        resolvePromise(this.url);
      });
    });
  }

  /** The cluster the live view shows (attached once it is up: the server listens first, so a port in use fails fast). */
  attach(live: LiveCluster, ops: LiveOps, configPath: string, securityArgs: string[] = []): void {
    this.securityArgs = securityArgs;
    this.live = live;
    this.ops = ops;
    this.configPath = configPath;
  }

  async close(): Promise<void> {
    this.stopBench();
    for (const s of this.streams) s.end();
    this.streams.clear();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  /** Sends one Server-Sent Event to every page. */
  broadcast(event: string, data: unknown): void {
    if (this.streams.size === 0) return;
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const s of this.streams) s.write(frame);
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (method === 'GET' && (path === '/' || path === '/index.html')) return this.asset(res, 'index.html');
    if (method === 'GET' && path.startsWith('/assets/')) return this.asset(res, path.slice('/assets/'.length));
    if (method === 'GET' && path === '/favicon.ico') return this.asset(res, 'favicon.svg');
    if (method === 'GET' && path === '/api/info') return json(res, this.opts.info);
    if (method === 'GET' && path === '/api/charts') return json(res, await this.chartsPayload());
    if (method === 'GET' && path === '/api/events') return this.events(req, res);
    if (method === 'POST' && path.startsWith('/api/live/')) return json(res, await this.liveOp(path.slice('/api/live/'.length), await body(req)));
    if (path.startsWith('/api/replay')) return json(res, await this.replayOp(method, path, url, req));
    if (method === 'POST' && path === '/api/bench/sample') return json(res, this.benchSample(await body(req)));
    if (method === 'POST' && path === '/api/bench/file') return json(res, this.benchFile(await rawBody(req), url.searchParams.get('name') ?? 'the file'));
    if (method === 'POST' && path === '/api/bench/start') return json(res, this.startBench(await body(req)));
    if (method === 'POST' && path === '/api/bench/stop') return json(res, { stopped: this.stopBench() });
    throw new HttpError(404, `no such page or call: ${method} ${path}`);
  }

  private async asset(res: ServerResponse, name: string): Promise<void> {
    const file = normalize(join(ASSETS, name));
    if (!file.startsWith(ASSETS + sep)) throw new HttpError(404, `no such file: ${name}`);
    let data: Buffer;
    try {
      data = await readFile(file);
    } catch {
      throw new HttpError(404, `no such file: ${name}`);
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-cache' });
    res.end(data);
  }

  private async chartsPayload(): Promise<unknown> {
    return (await this.opts.charts).map((c) => ({
      id: c.id,
      about: c.about,
      perTransaction: c.perTransaction,
      svg: c.svg,
      states: c.states,
      edges: c.chart.edges.map((e) => ({ id: e.id, event: e.event, source: e.source, target: e.target, label: e.label })),
    }));
  }

  private events(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    res.write(': shardbank studio\n\n');
    this.streams.add(res);
    if (this.live) res.write(`event: live\ndata: ${JSON.stringify(this.live.snapshot())}\n\n`);
    req.on('close', () => {
      this.streams.delete(res);
      // No page left: stop watching the nodes.
      if (this.streams.size === 0) this.live?.setWatch({ looking: false });
    });
  }

  // ---------------------------------------------------------------- live

  private async liveOp(op: string, b: Record<string, unknown>): Promise<unknown> {
    const live = this.live;
    const ops = this.ops;
    if (!live || !ops) throw new HttpError(409, this.opts.info['mode'] === 'offline' ? 'the studio runs without a cluster (--offline): no live view' : 'the cluster is still starting; try again in a moment');
    const int = (k: string) => {
      const v = Number(b[k]);
      if (!Number.isSafeInteger(v) || v < 0) throw new HttpError(400, `"${k}" must be a whole number (got ${JSON.stringify(b[k] ?? null)})`);
      return v;
    };
    const node = (k: string) => {
      const v = parseNodeName(String(b[k] ?? ''));
      if (v === null) throw new HttpError(400, `"${k}" must be a node name like n4 (got ${JSON.stringify(b[k] ?? null)})`);
      return v;
    };
    try {
      switch (op) {
        case 'watch': {
          const mode = b['mode'] as WatchMode | undefined;
          if (mode !== undefined && !['auto', 'all', 'one'].includes(mode)) throw new HttpError(400, `"mode" is auto, all or one`);
          live.setWatch({ looking: b['looking'] === undefined ? undefined : !!b['looking'], mode, selected: b['selected'] === undefined ? undefined : node('selected') });
          return { ok: true, watching: live.watching() };
        }
        case 'transfer':
          return { outcome: await ops.transfer(int('sender'), int('receiver'), int('amount')) };
        case 'read':
          return { outcome: await ops.read(int('item')) };
        case 'fail':
          return { outcome: await ops.fail(node('node')) };
        case 'recover':
          return { outcome: await ops.recover(node('node')) };
        case 'reshard':
          return { outcome: await ops.reshard() };
        default:
          throw new HttpError(404, `no live operation "${op}"`);
      }
    } catch (err) {
      if (err instanceof HttpError) throw err;
      // A node that is down or went away: the page shows why.
      throw new HttpError(502, (err as Error).message);
    }
  }

  // ---------------------------------------------------------------- replay

  private async replayOp(method: string, path: string, url: URL, req: IncomingMessage): Promise<unknown> {
    try {
      if (method === 'GET' && path === '/api/replay/list') {
        const dir = url.searchParams.get('dir') ?? '';
        return { dir, logs: logsIn(resolve(dir)) };
      }
      if (method === 'POST' && path === '/api/replay/open') {
        const b = await body(req);
        const p = String(b['path'] ?? '').trim();
        if (!p) throw new HttpError(400, 'give the path of a node log directory (<data-dir>/n4)');
        const id = `r${this.nextReplay++}`;
        const log = await ReplayLog.open(id, p);
        this.replays.set(id, log);
        if (this.replays.size > REPLAYS_MAX) this.replays.delete(this.replays.keys().next().value!);
        return { id, label: log.label, node: log.node, path: log.path, count: log.count, marks: log.marks, view: log.at(0) };
      }
      if (method === 'POST' && path === '/api/replay/diff') {
        const b = await body(req);
        return await diffLogs(this.replay(String(b['a'])), this.replay(String(b['b'])));
      }
      const m = /^\/api\/replay\/(r\d+)\/(step|find)$/.exec(path);
      if (method === 'GET' && m) {
        const log = this.replay(m[1]!);
        if (m[2] === 'step') return log.at(Number(url.searchParams.get('i') ?? 0));
        return this.find(log, url.searchParams);
      }
    } catch (err) {
      if (err instanceof ReplayError) throw new HttpError(400, err.message);
      throw err;
    }
    throw new HttpError(404, `no replay call ${method} ${path}`);
  }

  private replay(id: string): ReplayLog {
    const log = this.replays.get(id);
    if (!log) throw new HttpError(404, `no open log "${id}" (open it again)`);
    return log;
  }

  /** Jump to a transaction, item, seq or log index: the next step that matches after `from`. */
  private find(log: ReplayLog, q: URLSearchParams): unknown {
    const from = Number(q.get('from') ?? -1);
    const what = (q.get('what') ?? '').trim();
    const value = (q.get('value') ?? '').trim();
    let step: number;
    try {
      if (what === 'index') {
        if (!/^#?\d+$/.test(value)) throw new Error(`"${value}" is not a log index like #17`);
        step = log.stepOfIndex(Number(value.replace('#', '')));
      } else if (what === 'tx') step = log.find({ tx: txArg(value) }, from);
      else if (what === 'item') {
        if (!/^\d+$/.test(value)) throw new Error(`"${value}" is not an item number`);
        step = log.find({ item: Number(value) }, from);
      } else if (what === 'seq') step = log.find({ seq: seqArg(value) }, from);
      else throw new Error(`find what? tx, item, seq or index (got "${what}")`);
    } catch (err) {
      throw new HttpError(400, (err as Error).message);
    }
    if (step < 0) throw new HttpError(404, `no event in ${log.label} matches ${what} ${value}`);
    return { step };
  }

  // ---------------------------------------------------------------- bench

  private benchSample(b: Record<string, unknown>): unknown {
    this.broadcast('bench', b);
    return { ok: true };
  }

  private benchFile(text: string, name: string): unknown {
    try {
      return parseBenchReport(text, name);
    } catch (err) {
      if (err instanceof BenchFileError) throw new HttpError(400, err.message);
      throw err;
    }
  }

  private startBench(b: Record<string, unknown>): unknown {
    if (!this.live || !this.configPath) throw new HttpError(409, 'no cluster to run a bench against (--offline)');
    if (this.bench) throw new HttpError(409, `a bench is running already (pid ${this.bench.pid})`);
    const preset = String(b['preset'] ?? 'intra');
    const clients = Number(b['clients'] ?? 64);
    const duration = Number(b['duration'] ?? 10);
    if (!/^[a-z0-9]+$/.test(preset)) throw new HttpError(400, `"${preset}" is not a preset name`);
    if (!Number.isSafeInteger(clients) || clients < 1 || clients > 10_000) throw new HttpError(400, '"clients" must be 1..10000');
    if (!Number.isSafeInteger(duration) || duration < 1 || duration > 3600) throw new HttpError(400, '"duration" must be 1..3600 seconds');
    const args = [MAIN, 'bench', '--connect', '--config', this.configPath, ...this.securityArgs, '--initial-balance', '1000000', '--preset', preset, '--clients', String(clients), '--duration', String(duration), '--settle', '3', '--report-to', this.url];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.bench = child;
    this.benchOutput = '';
    child.stdout!.on('data', (d: Buffer) => (this.benchOutput += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (this.benchOutput += d.toString().replace(/\r/g, '\n')));
    child.once('exit', (code) => {
      this.bench = null;
      this.broadcast('benchDone', { pid: child.pid, code, output: this.benchOutput.split('\n').filter((l) => l.trim() && !/^[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]/.test(l.trim())).join('\n') });
    });
    this.broadcast('benchStarted', { pid: child.pid, preset, clients, duration });
    return { pid: child.pid };
  }

  private stopBench(): boolean {
    const child = this.bench;
    if (!child || child.exitCode !== null) return false;
    process.kill(child.pid!, 'SIGTERM');
    return true;
  }

  private fail(res: ServerResponse, err: unknown): void {
    const status = err instanceof HttpError ? err.status : 500;
    const message = err instanceof Error ? err.message : String(err);
    if (res.headersSent) {
      res.end();
      return;
    }
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: message }));
  }
}

function json(res: ServerResponse, data: unknown): void {
  res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache' });
  res.end(JSON.stringify(data));
}

async function rawBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > BODY_MAX) throw new HttpError(413, `the request is over ${BODY_MAX / 2 ** 20} MB`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function body(req: IncomingMessage): Promise<Record<string, unknown>> {
  const text = await rawBody(req);
  if (!text.trim()) return {};
  try {
    const v = JSON.parse(text) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (err) {
    throw new HttpError(400, `the request body is not a JSON object (${(err as Error).message})`);
  }
}
