import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { waitFor } from './test-server.js';

export const repoRoot = path.resolve(import.meta.dirname, '../..');

export interface ChildServer {
  child: ChildProcess;
  ports: { mqtt: number; http: number };
  output: () => string;
  exited: Promise<number | null>;
}

/** The node flags of `npm start` (package.json), e.g. the heap's young generation size. */
export function startScriptNodeFlags(): string[] {
  const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { scripts: { start: string } };
  const words = pkg.scripts.start.split(' ');
  if (words[0] !== 'node' || !pkg.scripts.start.endsWith('--import tsx server/src/main.ts')) {
    throw new Error(`package.json's start script is not "node [flags] --import tsx server/src/main.ts": ${pkg.scripts.start}`);
  }
  return words.slice(1, words.indexOf('--import'));
}

const running = new Set<ChildProcess>();

/**
 * Kills (SIGKILL) every child server this process started that is still running: the setup file
 * calls it after each test file, so a test that failed before stopping its server leaves none behind.
 */
export function killLeftoverChildren(): void {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
}

/** Sluice as users run it (`npm start`: node with its flags, tsx, server/src/main.ts) in its own process. */
export function spawnSluice(args: string[], env: Record<string, string> = {}): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  // SLUICE_NODE_OPTIONS adds node flags the environment cannot carry, e.g. --cpu-prof for a benchmark.
  const nodeFlags = process.env.SLUICE_NODE_OPTIONS?.split(' ').filter((f) => f.length > 0) ?? [];
  const child = spawn(process.execPath, [...startScriptNodeFlags(), ...nodeFlags, '--import', 'tsx', 'server/src/main.ts', ...args], {
    cwd: repoRoot,
    env: { ...process.env, LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  // 'close', not 'exit': 'exit' can come before the last of the child's output has been read, and
  // a test that reads output() once it exited would then miss its last lines.
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => {
    running.delete(child);
    resolve(code);
  }));
  return { child, output: () => out, exited };
}

/** Starts a child server on free ports and waits until ports.json says where it listens. */
export async function startChildSluice(dataDir: string, args: string[] = [], env: Record<string, string> = {}): Promise<ChildServer> {
  const portsFile = path.join(dataDir, 'ports.json');
  fs.rmSync(portsFile, { force: true });
  const spawned = spawnSluice(['--data-dir', dataDir, '--mqtt-port', '0', '--http-port', '0', ...args], env);
  let exitCode: number | null | undefined;
  void spawned.exited.then((code) => { exitCode = code; });
  try {
    const ports = await waitFor('ports.json', () => {
      if (exitCode !== undefined) throw new Error(`sluice exited with ${exitCode}: ${spawned.output()}`);
      return fs.existsSync(portsFile) ? (JSON.parse(fs.readFileSync(portsFile, 'utf8')) as { mqtt: number; http: number }) : undefined;
    }, 20_000);
    return { ...spawned, ports };
  } catch (err) {
    // The caller never gets the child to stop: a server that was slow to start must not outlive the test.
    spawned.child.kill('SIGKILL');
    throw err;
  }
}
