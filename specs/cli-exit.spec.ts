/**
 * The command as a user meets it: one exit-code table for every command,
 * one line for an ordinary mistake, `--version`, a node that is not a test
 * cluster's refusing the test driver's commands, and plaintext kept to
 * loopback.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tcpAdmin } from '../cli/cluster.js';
import { makeTopology } from '../protocol/topology.js';
import { shardbank } from './support/cli.js';
import { freePortRange } from './support/ports.js';

const main = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const version = (await import('node:fs')).readFileSync(new URL('../../package.json', import.meta.url), 'utf8');

const scratch = mkdtempSync(join(tmpdir(), 'shardbank-cli-exit-'));
test.after(() => rmSync(scratch, { recursive: true, force: true }));

test('--version prints the package version; --help documents the exit codes', async () => {
  const v = await shardbank(['--version']);
  assert.is(v.code, 0);
  assert.is(v.out.trim(), (JSON.parse(version) as { version: string }).version);
  const help = await shardbank(['--help']);
  assert.is(help.code, 0);
  assert.match(help.out, /Exit codes \(every command\):/);
  assert.match(help.out, /\n\s+2\s+bad usage, input or config/);
  const runHelp = await shardbank(['run', '--help']);
  assert.is(runHelp.code, 0);
  assert.match(runHelp.out, /70\s+an internal fault/);
});

test('ordinary mistakes get one line naming what and where, and exit code 2', async () => {
  writeFileSync(join(scratch, 'file'), 'x');
  const cases: [string[], RegExp][] = [
    [['run', join(scratch, 'missing.csv')], /missing\.csv: no such file/],
    [['run', scratch], /is a directory, not a CSV file/],
    [['node', '--id', 'n99', '--plaintext', '--data-dir', join(scratch, 'd')], /--id n99: not a node of this configuration \(it has n1\.\.n9\)/],
    [['node', '--id', 'n1', '--plaintext', '--data-dir', join(scratch, 'file')], /--data-dir .*file: cannot create it \(a file is in the way\)/],
    [['node', '--id', 'n1', '--data-dir', join(scratch, 'd')], /give --tls DIR .* or --plaintext/],
    [['node', '--id', 'n1', '--tls', join(scratch, 'nowhere'), '--data-dir', join(scratch, 'd')], /--tls .*nowhere: no such directory/],
    [['scenario', join(scratch, 'missing.txt')], /missing\.txt: no such scenario file/],
    [['run', join(scratch, 'missing.csv'), '--config', join(scratch, 'missing.json')], /missing\.json: cannot read config file/],
    [['replay', join(scratch, 'nothing')], /nothing: no such directory/],
  ];
  for (const [args, want] of cases) {
    const r = await shardbank(args);
    assert.is(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, want, args.join(' '));
    assert.is(r.err.trim().split('\n').length, 1, `one line for ${args.join(' ')}: ${r.err}`);
    assert.not.match(r.err, /\n\s+at /, 'no stack trace');
  }
  const bad = await shardbank(['run', '--bogus']);
  assert.is(bad.code, 2, 'an unknown flag is bad usage');
});

test('a node that is not a test cluster\'s refuses flush, fail and recover, even from the admin', async () => {
  const base = await freePortRange(1);
  const topology = makeTopology({ clusters: 1, nodesPerCluster: 1, basePort: base });
  const config = join(scratch, 'one.json');
  writeFileSync(config, JSON.stringify({ clusters: 1, nodesPerCluster: 1, basePort: base }));
  const child = spawn(process.execPath, [main, 'node', '--id', 'n1', '--plaintext', '--cluster-id', 'prod', '--config', config, '--data-dir', join(scratch, 'prod')], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise((r) => child.once('exit', r));
  const { admin, transport } = tcpAdmin(topology, { mode: 'plaintext', cluster: 'prod' }, 'spec');
  try {
    for (let i = 0; i < 50; i++) {
      if (await admin.request(1, { status: {} }).then(() => true, () => false)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const op of [{ flush: { initialBalance: 10, leader: 1, set: 1 } }, { fail: {} }, { recover: {} }]) {
      const err = await admin.request(1, op).then(() => null, (e: Error) => e.message);
      assert.match(err ?? '', /is a test command, and this node is not started as a test cluster/, JSON.stringify(op));
    }
    const s = (await admin.request(1, { status: {} })).status!;
    assert.not.ok(s.failed, 'the node was not failed');
  } finally {
    await transport.close();
    process.kill(child.pid!, 'SIGTERM');
    await exited;
  }
});

test('init makes an authority with a certificate per node, client and operator; issue adds one; init will not overwrite', async () => {
  const out = join(scratch, 'certs');
  const r = await shardbank(['init', '--out', out, '--clusters', '2', '--nodes-per-cluster', '3', '--client', 'alice,bob', '--admin', 'ops', '--cluster-id', 'bank7']);
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /cluster bank7: authority in .*ca\.crt/);
  const { X509Certificate } = await import('node:crypto');
  const { readFileSync, statSync } = await import('node:fs');
  const subject = (name: string) => new X509Certificate(readFileSync(join(out, `${name}.crt`))).subject.split('\n').sort().join(', ');
  assert.is(subject('n6'), 'CN=n6, O=shardbank bank7, OU=peer');
  assert.is(subject('alice'), 'CN=alice, O=shardbank bank7, OU=client');
  assert.is(subject('ops'), 'CN=ops, O=shardbank bank7, OU=admin');
  assert.is(statSync(join(out, 'ca.key')).mode & 0o777, 0o600, 'keys are private');
  const ca = new X509Certificate(readFileSync(join(out, 'ca.crt')));
  assert.ok(new X509Certificate(readFileSync(join(out, 'bob.crt'))).verify(ca.publicKey), 'signed by the authority');
  const again = await shardbank(['init', '--out', out]);
  assert.is(again.code, 2);
  assert.match(again.err, /already holds an authority/);
  const issued = await shardbank(['issue', '--authority', out, '--role', 'client', '--name', 'carol']);
  assert.is(issued.code, 0, issued.err);
  assert.is(subject('carol'), 'CN=carol, O=shardbank bank7, OU=client');
  const bad = await shardbank(['issue', '--authority', out, '--role', 'client', '--name', 'a/b']);
  assert.is(bad.code, 2);
  assert.match(bad.err, /"a\/b" is not a valid client name/);
});

test('plaintext is refused off loopback', async () => {
  const config = join(scratch, 'wide.json');
  writeFileSync(config, JSON.stringify({ clusters: 1, nodesPerCluster: 1, nodes: [{ id: 1, host: '0.0.0.0', port: 29999 }] }));
  const r = await shardbank(['node', '--id', 'n1', '--plaintext', '--config', config, '--data-dir', join(scratch, 'wide')]);
  assert.is(r.code, 2);
  assert.match(r.err, /n1 listens on 0\.0\.0\.0: plaintext is only allowed on loopback/);
});

test.run();
