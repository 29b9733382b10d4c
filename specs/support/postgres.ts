/**
 * A throwaway PostgreSQL server for specs: initdb in a fresh temp dir, one
 * postgres process on 127.0.0.1 (trust auth), stopped by its pid. As root it
 * runs as the `postgres` user, since PostgreSQL refuses root.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** PostgreSQL 15's server programs, as Debian installs them. */
export const PG_BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';

export function postgresInstalled(): boolean {
  return ['initdb', 'postgres', 'pg_isready'].every((p) => existsSync(join(PG_BIN, p)));
}

export interface RunningPostgres {
  url: string;
  pid: number;
  dir: string;
  /** Fast shutdown by pid, then the temp dir is removed. */
  stop(): Promise<void>;
}

/** uid and gid to run the server as: the `postgres` user as root, else ourselves. */
function owner(): { uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return {};
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

export async function startPostgres(port: number): Promise<RunningPostgres> {
  const dir = mkdtempSync(join(tmpdir(), 'shardbank-pg-spec-'));
  const as = owner();
  if (as.uid !== undefined) chownSync(dir, as.uid, as.gid!);
  const env = Object.assign({}, process.env, { HOME: dir });
  const data = join(dir, 'data');
  const init = spawnSync(join(PG_BIN, 'initdb'), ['-D', data, '-U', 'shardbank', '--auth=trust', '-E', 'UTF8', '--no-instructions'], { cwd: dir, env, encoding: 'utf8', ...as });
  if (init.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${init.stderr || init.error?.message}`);
  }
  const server = spawn(
    join(PG_BIN, 'postgres'),
    ['-D', data, '-c', `port=${port}`, '-c', "listen_addresses=127.0.0.1", '-c', `unix_socket_directories=${dir}`],
    { cwd: dir, env, stdio: 'ignore', ...as },
  );
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  const stop = async () => {
    if (server.exitCode === null && server.signalCode === null) {
      process.kill(server.pid!, 'SIGINT');
      const timer = setTimeout(() => server.exitCode === null && process.kill(server.pid!, 'SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; ; i++) {
    if (server.exitCode !== null) {
      await stop();
      throw new Error(`postgres exited with code ${server.exitCode}`);
    }
    if (spawnSync(join(PG_BIN, 'pg_isready'), ['-q', '-h', '127.0.0.1', '-p', String(port)]).status === 0) break;
    if (i > 120) {
      await stop();
      throw new Error('postgres not ready after 30 s');
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return { url: `postgres://shardbank@127.0.0.1:${port}/postgres`, pid: server.pid!, dir, stop };
}
