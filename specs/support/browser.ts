/**
 * Drives Debian's Chromium headless through puppeteer-core (nothing
 * downloads a browser), and starts `shardbank studio` as a process. Each
 * process is stopped by its own pid; each browser gets a fresh profile
 * directory, removed after.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { type Browser } from 'puppeteer-core';

const CANDIDATES = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter((p): p is string => !!p);

/** The flags the machine's notes give for headless Chromium here (no background networking: the network is closed). */
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** The system Chromium, or null. */
export function chromiumPath(): string | null {
  return CANDIDATES.find((p) => existsSync(p)) ?? null;
}

/**
 * Whether the browser specs can run here. Under CI (`CI=true`) a missing
 * browser is a failure, not a skip: .ci/run installs it.
 */
export function browserAvailable(): boolean {
  if (chromiumPath()) return true;
  if (process.env.CI === 'true') throw new Error(`no Chromium at ${CANDIDATES.join(' or ')}: .ci/run installs Debian's chromium; the browser specs cannot run without it`);
  return false;
}

export interface OpenBrowser {
  browser: Browser;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<OpenBrowser> {
  const path = chromiumPath();
  if (!path) throw new Error('no Chromium found');
  const profile = mkdtempSync(join(tmpdir(), 'shardbank-chromium-'));
  const browser = await puppeteer.launch({ executablePath: path, headless: true, userDataDir: profile, args: FLAGS });
  const pid = browser.process()?.pid;
  return {
    browser,
    close: async () => {
      await browser.close().catch(() => undefined);
      if (pid !== undefined) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export interface RunningStudio {
  url: string;
  pid: number;
  output: () => string;
  stop(): Promise<void>;
}

const MAIN = join(process.cwd(), 'dist', 'cli', 'main.js');

/** Starts `shardbank studio ARGS` and resolves with its URL once it prints it. */
export function startStudio(args: string[], timeoutMs = 60_000): Promise<RunningStudio> {
  const child: ChildProcess = spawn(process.execPath, [MAIN, 'studio', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop().then(() => reject(new Error(`studio did not print its URL within ${timeoutMs} ms:\n${out}`)));
    }, timeoutMs);
    const stop = async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      process.kill(child.pid!, 'SIGTERM');
      const kill = setTimeout(() => child.exitCode === null && process.kill(child.pid!, 'SIGKILL'), 10_000);
      await exited;
      clearTimeout(kill);
    };
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /studio: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        child.stdout!.on('data', (more: Buffer) => (out += more.toString()));
        resolve({ url: m[1]!, pid: child.pid!, output: () => out, stop });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`studio exited with code ${code} before printing its URL:\n${out}`));
    });
  });
}
