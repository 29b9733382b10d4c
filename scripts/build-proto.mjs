// Generates protocol/generated/shardbank.{js,d.ts} from protocol/*.proto
// (protobufjs static code: typed messages, no reflection at run time).
// With --copy, puts the generated module beside tsc's output in dist/.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const out = join(root, 'protocol', 'generated');
const js = join(out, 'shardbank.js');

if (process.argv.includes('--copy')) {
  const dist = join(root, 'dist', 'protocol', 'generated');
  mkdirSync(dist, { recursive: true });
  copyFileSync(js, join(dist, 'shardbank.js'));
} else {
  const protos = readdirSync(join(root, 'protocol')).filter((f) => f.endsWith('.proto')).map((f) => join(root, 'protocol', f));
  const bin = (name) => join(root, 'node_modules', '.bin', name);
  mkdirSync(out, { recursive: true });
  execFileSync(bin('pbjs'), ['-t', 'static-module', '-w', 'es6', '--force-number', '--no-verify', '--no-delimited', '--no-beautify', '-o', js, ...protos], { stdio: 'inherit' });
  // protobufjs emits a bare 'protobufjs/minimal' import; Node's ESM resolver wants the file.
  writeFileSync(js, readFileSync(js, 'utf8').replace(/from "protobufjs\/minimal"/g, 'from "protobufjs/minimal.js"'));
  execFileSync(bin('pbts'), ['-o', join(out, 'shardbank.d.ts'), js], { stdio: 'inherit' });
}
