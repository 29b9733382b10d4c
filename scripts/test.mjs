// Runs every compiled spec with uvu and ends with the one line CI reads:
// "N passed, N failed, N skipped".
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const dir = 'dist/specs';
if (!existsSync(dir)) {
  console.error(`${dir} is missing: run "npm run build" first`);
  process.exit(1);
}
const filter = process.argv[2] ?? '.';
const run = spawnSync(process.execPath, ['node_modules/uvu/bin.js', dir, `${filter}.*\\.spec\\.js$`], {
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'inherit'],
  env: { ...process.env, FORCE_COLOR: '0' },
});
process.stdout.write(run.stdout);
// uvu colours its summary even when asked not to; read it without the escape codes.
const plain = run.stdout.replace(/\x1b\[[0-9;]*m/g, '');
const count = (label) => Number((new RegExp(`${label}:\\s+(\\d+)`).exec(plain) ?? [])[1] ?? 0);
const total = count('Total');
const passed = count('Passed');
const skipped = count('Skipped');
// uvu's Total counts the tests that ran; skipped ones are not in it.
const failed = run.status === 0 ? total - passed : Math.max(1, total - passed);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(run.status === 0 && failed === 0 ? 0 : 1);
