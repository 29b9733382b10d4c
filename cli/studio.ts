/**
 * `shardbank studio`: the statecharts and the cluster in a local web page.
 * It serves the page on 127.0.0.1 (`--port`), against a running cluster
 * (`--connect`), one it starts itself (the default), or none (`--offline`:
 * charts, replay and bench files only). `--export DIR` writes the charts as
 * files instead (one SVG per machine and an index.html that opens from
 * disk); `--format mermaid` prints them as Mermaid stateDiagram-v2.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chartMermaid } from '../charts/mermaid.js';
import { escapeXml } from '../charts/svg.js';
import { nodeName } from '../protocol/messages.js';
import { allNodes, clusterNodes, type Topology } from '../protocol/topology.js';
import { saveTopology } from './config.js';
import type { SecurityFlags } from './credentials.js';
import { flushCluster, freshSetNumber } from './runner.js';
import { Session } from './session.js';
import { progressSpinner } from './spinner.js';
import { drawCharts, type DrawnChart } from './studio-charts.js';
import { LiveCluster } from './studio-live.js';
import { LiveOps } from './studio-ops.js';
import { StudioServer } from './studio-server.js';

export interface StudioOptions extends SecurityFlags {
  topology: Topology;
  port: number;
  connect?: boolean;
  offline?: boolean;
  dataDir?: string;
  export?: string;
  format?: 'svg' | 'mermaid';
}

/** Bad input for the command: one line on stderr, exit code 2. */
export class StudioError extends Error {}

export async function studioCommand(opts: StudioOptions): Promise<number> {
  try {
    if (opts.export !== undefined) return await exportCharts(resolve(opts.export), opts.format ?? 'svg');
    if (opts.format === 'mermaid') {
      for (const c of await drawCharts()) process.stdout.write(`%% ${c.id}: ${c.about}\n${chartMermaid(c.chart)}\n\n`);
      return 0;
    }
    if (opts.format === 'svg') throw new StudioError('--format svg writes files: give --export DIR');
    return await serve(opts);
  } catch (err) {
    if (!(err instanceof StudioError)) throw err;
    process.stderr.write(`studio: ${err.message}\n`);
    return 2;
  }
}

// ---------------------------------------------------------------- export

/** The charts as files: an SVG (or .mmd) per machine and an index.html that shows them all. */
async function exportCharts(dir: string, format: 'svg' | 'mermaid'): Promise<number> {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw new StudioError(`cannot write to ${dir}: ${(err as Error).message}`);
  }
  const charts = await drawCharts();
  for (const c of charts) {
    if (format === 'mermaid') writeFileSync(join(dir, `${c.id}.mmd`), `${chartMermaid(c.chart)}\n`);
    else writeFileSync(join(dir, `${c.id}.svg`), `${c.svg}\n`);
  }
  if (format === 'svg') writeFileSync(join(dir, 'index.html'), exportIndex(charts));
  process.stdout.write(`wrote ${charts.length} ${format === 'svg' ? 'SVG files and index.html' : 'Mermaid files'} to ${dir}\n`);
  return 0;
}

function exportIndex(charts: DrawnChart[]): string {
  const toc = charts.map((c) => `<li><a href="#${c.id}">${c.id}</a>: ${escapeXml(c.about)}</li>`).join('\n');
  const sections = charts
    .map((c) => `<section id="${c.id}"><h2>${c.id}</h2><p>${escapeXml(c.about)} (<a href="${c.id}.svg">${c.id}.svg</a>)</p><div class="chart-box">${c.svg}</div></section>`)
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>shardbank statecharts</title>
<style>body{font-family:system-ui,sans-serif;margin:24px;color:#1d2733}section{margin:28px 0}.chart-box{overflow:auto;border:1px solid #d5dbe3;border-radius:6px;padding:8px;background:#fff}</style>
</head><body>
<h1>shardbank: the node's actors as statecharts</h1>
<p>Drawn from each XState machine's own definition and laid out by ELK (shardbank studio --export).</p>
<ul>${toc}</ul>
${sections}
</body></html>
`;
}

// ---------------------------------------------------------------- serving

async function serve(opts: StudioOptions): Promise<number> {
  const drawing = drawCharts();
  const topology = opts.topology;
  const say = (l: string) => process.stderr.write(`${l}\n`);
  let dataDir: string | null = null;
  let removeDataDir = false;
  let live: LiveCluster | null = null;
  let configPath: string | null = null;
  const closers: (() => Promise<void> | void)[] = [];

  const info = {
    mode: opts.offline ? 'offline' : opts.connect ? 'connected' : 'local',
    nodes: allNodes(topology).map(nodeName),
    clusters: Array.from({ length: topology.clusters }, (_, i) => clusterNodes(topology, i + 1).map(nodeName)),
    items: topology.items,
    initialBalance: topology.initialBalance,
  };
  const server = new StudioServer({ charts: drawing, info });
  let url: string;
  try {
    url = await server.listen(opts.port);
  } catch (err) {
    throw new StudioError(`cannot listen on 127.0.0.1:${opts.port}: ${(err as Error).message}`);
  }
  closers.push(() => server.close());

  const shutdown = async () => {
    for (const close of closers.reverse()) await Promise.resolve(close()).catch(() => undefined);
    if (removeDataDir && dataDir) rmSync(dataDir, { recursive: true, force: true });
  };

  try {
    if (!opts.offline) {
      // The session starts the local cluster (or connects, checking the cluster it reaches), with TLS.
      const session = await Session.open({ ...opts, command: 'studio', clientSlots: 8 });
      closers.push(() => session.close());
      await session.start(progressSpinner());
      const { admin, client } = session;
      if (session.cluster) {
        await flushCluster(admin, topology, freshSetNumber());
        configPath = session.cluster.configPath;
      } else {
        dataDir = mkdtempSync(join(tmpdir(), 'shardbank-studio-'));
        removeDataDir = true;
        configPath = join(dataDir, 'config.json');
        saveTopology(topology, configPath);
      }
      live = new LiveCluster({ topology, admin, charts: await drawing, emit: (batch) => server.broadcast('live', batch) });
      live.start();
      closers.push(() => live!.stop());
      const sec = session.security;
      server.attach(live, new LiveOps(topology, admin, client), configPath, sec.mode === 'tls' ? ['--tls', sec.dir] : ['--plaintext', '--cluster-id', sec.cluster]);
    }
  } catch (err) {
    await shutdown();
    throw new StudioError((err as Error).message);
  }

  await drawing;
  process.stdout.write(`studio: ${url}\n`);
  say(`studio: ${opts.offline ? 'no cluster (--offline)' : opts.connect ? 'watching the running cluster' : 'running a local cluster'}; Ctrl-C to stop`);
  await new Promise<void>((done) => {
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
    // Started by another process (a spec): its going away ends the studio too.
    if (process.send) process.once('disconnect', done);
  });
  await shutdown();
  return 0;
}
