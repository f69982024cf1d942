import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Python MQTT clients our users run (ThingsBoard's device SDK, paho), each in a venv of its own
 * under test-peers/ (git-ignored), installed from PyPI by the versions in test/peers/. `.ci/run`
 * makes them before `npm test` (`npx tsx test/support/python-peers.ts`); a test that needs one
 * and finds it missing makes it then, so `npm test` needs nothing done by hand.
 */
export type PythonPeer = 'tb' | 'paho';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const peersDir = path.join(root, 'test-peers');

/** The python of the peer's venv, made (once, atomically) if it is not there yet. */
export function pythonOf(peer: PythonPeer): string {
  const venv = path.join(peersDir, peer);
  const python = path.join(venv, 'bin', 'python');
  const requirements = path.join(root, 'test', 'peers', `requirements-${peer}.txt`);
  const stamp = path.join(venv, 'requirements.txt');
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === fs.readFileSync(requirements, 'utf8')) return python;
  // Built beside, then renamed into place: test workers that race each build their own, one wins.
  fs.mkdirSync(peersDir, { recursive: true });
  const building = path.join(peersDir, `${peer}.building-${process.pid}`);
  fs.rmSync(building, { recursive: true, force: true });
  try {
    execFileSync('python3', ['-m', 'venv', building], { stdio: 'pipe' });
    // A venv's scripts hold its path: pip is run as a module so the rename does not matter.
    execFileSync(path.join(building, 'bin', 'python'), ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '-r', requirements],
      { stdio: 'pipe', timeout: 300_000 });
    fs.copyFileSync(requirements, path.join(building, 'requirements.txt'));
    fs.rmSync(venv, { recursive: true, force: true });
    fs.renameSync(building, venv);
  } catch (err) {
    fs.rmSync(building, { recursive: true, force: true });
    if (fs.existsSync(stamp)) return python; // another worker made it meanwhile
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(`could not make the Python venv for ${peer} (${requirements}): ${e.stderr?.toString().trim() || e.message}`);
  }
  return python;
}

// `npx tsx test/support/python-peers.ts`: make every peer's venv now (.ci/run).
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const peer of ['tb', 'paho'] as const) console.log(`${peer}: ${pythonOf(peer)}`);
}
