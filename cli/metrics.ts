/**
 * What an operator's Prometheus scrapes from a node process: its counters
 * (turns, batches, fsyncs, events, snapshots, log size, commit and execute
 * points, ballot, role, in-doubt transactions, the transport's frames,
 * refusals and connections), latency histograms (log writes, fsynced or
 * not; how long client requests waited at this node), and the process's own
 * (CPU, memory, event-loop delay, GC) from prom-client.
 *
 * Served on an admin HTTP port: over HTTPS with the cluster's certificates,
 * where only an admin-role certificate gets an answer, or over plain HTTP on
 * loopback when the node runs in plaintext.
 */
import http from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { LogEventProps, NodeStatus } from '../protocol/messages.js';
import type { TcpTransportStats } from '../protocol/tcp.js';
import { isLoopback, principalOf, serverOptions, type Security } from '../protocol/tls.js';
import type { NodeLog } from '../store/eventlog.js';
import { UsageError } from './credentials.js';

const SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** The node's metrics, and the hooks that feed the histograms. */
export class NodeMetrics {
  readonly registry = new Registry();
  private readonly logWrites: Histogram<'sync'>;
  private readonly requestWait: Histogram;

  constructor(node: number, read: { status: () => NodeStatus; transport: () => Readonly<TcpTransportStats> }) {
    const r = this.registry;
    r.setDefaultLabels({ node: `n${node}` });
    collectDefaultMetrics({ register: r });
    this.logWrites = new Histogram({ name: 'shardbank_log_append_seconds', help: 'Time to append one batch to the event log', labelNames: ['sync'], buckets: SECONDS, registers: [r] });
    this.requestWait = new Histogram({ name: 'shardbank_request_wait_seconds', help: 'Time a client request waited at this node for its reply', buckets: SECONDS, registers: [r] });
    const gauge = (name: string, help: string, value: (s: NodeStatus) => number) =>
      new Gauge({ name, help, registers: [r], collect() { this.set(value(read.status())); } });
    const counter = (name: string, help: string, value: (s: NodeStatus) => number) =>
      new Counter({ name, help, registers: [r], collect() { this.reset(); this.inc(value(read.status())); } });
    const n = (v: unknown) => Number(v ?? 0);
    counter('shardbank_turns_total', 'Turns the node ran', (s) => n(s.turns));
    counter('shardbank_log_batches_total', 'Batches written to the event log', (s) => n(s.batches));
    counter('shardbank_log_syncs_total', 'Batches fsynced', (s) => n(s.syncs));
    counter('shardbank_log_events_total', 'Events written to the event log', (s) => n(s.events));
    counter('shardbank_snapshots_total', 'Snapshots taken', (s) => n(s.snapshots));
    gauge('shardbank_log_size_events', 'Events in the log since its start (compacted ones included)', (s) => n(s.logSize));
    gauge('shardbank_commit_through', 'Contiguous commit point (seq)', (s) => n(s.commitThrough));
    gauge('shardbank_executed_through', 'Executed through this seq', (s) => n(s.executedThrough));
    gauge('shardbank_ballot_round', 'Round of the ballot this node follows or leads', (s) => n(s.ballot?.round));
    gauge('shardbank_leader', 'The node this node believes leads its cluster (0: none)', (s) => n(s.leader));
    gauge('shardbank_is_leader', '1 while this node leads its cluster', (s) => (s.role === 'leader' ? 1 : 0));
    gauge('shardbank_failed', '1 while this node is failed (disconnected by the test driver)', (s) => (s.failed ? 1 : 0));
    gauge('shardbank_in_doubt_transactions', 'Prepared cross-shard transactions not decided yet', (s) => n(s.walEntries));
    gauge('shardbank_unacked_decisions', 'Cross-shard decisions not acknowledged yet', (s) => n(s.unacked));
    const transport = (name: string, help: string, value: (t: Readonly<TcpTransportStats>) => number, kind: 'counter' | 'gauge' = 'counter') =>
      kind === 'counter'
        ? new Counter({ name, help, registers: [r], collect() { this.reset(); this.inc(value(read.transport())); } })
        : new Gauge({ name, help, registers: [r], collect() { this.set(value(read.transport())); } });
    transport('shardbank_frames_sent_total', 'Frames written', (t) => t.framesSent);
    transport('shardbank_envelopes_sent_total', 'Envelopes written', (t) => t.envelopesSent);
    transport('shardbank_envelopes_received_total', 'Envelopes received and let through', (t) => t.envelopesReceived);
    transport('shardbank_envelopes_dropped_total', 'Envelopes given up (queue overflow, no route, too large)', (t) => t.dropped);
    transport('shardbank_frame_errors_total', 'Connections closed for a garbled, oversized or crowded frame', (t) => t.frameErrors);
    transport('shardbank_connections_refused_total', 'Connections refused before admission: limits, deadlines, handshakes, hellos', (t) => t.refused);
    transport('shardbank_rule_violations_total', 'Connections closed for an envelope against its role', (t) => t.violations);
    transport('shardbank_connections_evicted_total', 'Connections closed for being idle or to make room', (t) => t.evicted);
    transport('shardbank_requests_overloaded_total', 'Client requests answered overloaded by the transport', (t) => t.overloaded);
    transport('shardbank_requests_in_flight', 'Client requests waiting for a reply', (t) => t.inflight, 'gauge');
    new Gauge({
      name: 'shardbank_connections',
      help: 'Inbound connections open, by role (pending: not admitted yet)',
      labelNames: ['role'],
      registers: [r],
      collect() {
        for (const [role, count] of Object.entries(read.transport().connections)) this.set({ role }, count);
      },
    });
  }

  /** Records one request's wait (ms), from the transport. */
  answered(ms: number): void {
    this.requestWait.observe(ms / 1000);
  }

  /** The node's log, with every append timed. */
  timedLog(log: NodeLog): NodeLog {
    const hist = this.logWrites;
    return {
      open: () => log.open(),
      readAll: () => log.readAll(),
      clear: () => log.clear(),
      close: () => log.close(),
      compact: (snapshot: LogEventProps) => log.compact(snapshot),
      get size() {
        return log.size;
      },
      async append(events, opts) {
        const end = hist.startTimer({ sync: opts?.sync === false ? 'no' : 'yes' });
        try {
          await log.append(events, opts);
        } finally {
          end();
        }
      },
    };
  }
}

/** Parses `--metrics HOST:PORT` (or just PORT, on 127.0.0.1). */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:(.+):)?(\d{1,5})$/.exec(text.trim());
  const port = Number(m?.[2]);
  if (!m || !(port >= 1 && port <= 65535)) throw new UsageError(`--metrics ${text}: expected HOST:PORT or PORT`);
  return { host: m[1] ?? '127.0.0.1', port };
}

/**
 * Serves `/metrics` on `at`; resolves once listening. Over TLS only an admin
 * certificate of the cluster gets an answer.
 */
export async function serveMetrics(metrics: NodeMetrics, at: { host: string; port: number }, security: Security): Promise<http.Server> {
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (security.mode === 'tls') {
      const p = principalOf((req.socket as TLSSocket).getPeerCertificate().subject, security.cluster);
      if (typeof p === 'string' || p.role !== 'admin') {
        res.writeHead(403).end('metrics are for the admin role\n');
        return;
      }
    }
    if (req.method !== 'GET' || (req.url ?? '/').split('?')[0] !== '/metrics') {
      res.writeHead(404).end('try /metrics\n');
      return;
    }
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      (err: Error) => res.writeHead(500).end(`${err.message}\n`),
    );
  };
  if (security.mode === 'plaintext' && !isLoopback(at.host)) {
    throw new UsageError(`--metrics ${at.host}:${at.port}: plain HTTP is only served on loopback; use TLS for another address`);
  }
  const server = security.mode === 'tls' ? https.createServer(serverOptions(security.credentials), handler) : http.createServer(handler);
  server.headersTimeout = 5000;
  server.requestTimeout = 10_000;
  server.maxConnections = 16;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'EADDRINUSE' ? new UsageError(`--metrics ${at.host}:${at.port}: the port is in use`) : err),
    );
    server.listen(at.port, at.host, () => resolve());
  });
  return server;
}
