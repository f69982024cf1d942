import { OptionError, parseSimArgs, usage } from './options.js';
import { ProvisionError } from './provision.js';
import { runSimulation, summaryLine } from './simulation.js';
import { TokensFileError } from './tokens-file.js';

/**
 * `npm run sim -- [options]`: parse options, run until --duration ends or SIGINT/SIGTERM, print
 * the summary. Exit codes: 0 done, 1 could not run (server unreachable, token refused, unreadable tokens
 * file), 2 bad options.
 */
async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseSimArgs(process.argv.slice(2), { env: process.env });
  } catch (err) {
    if (!(err instanceof OptionError)) throw err;
    process.stderr.write(`sluice-sim: ${err.message}\n(npm run sim -- --help lists the options)\n`);
    process.exit(2);
  }
  if (parsed.help) {
    process.stdout.write(`${usage()}\n`);
    return;
  }

  const stop = new AbortController();
  let signals = 0;
  const onSignal = (signal: string) => {
    if (++signals > 1) {
      process.stderr.write('sluice-sim: second signal: exiting without a clean stop\n');
      process.exit(1);
    }
    process.stdout.write(`sluice-sim: ${signal}, stopping\n`);
    stop.abort();
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));

  try {
    const { json } = parsed.options;
    // With --json, stdout carries the summary only; progress goes to stderr.
    const report = (line: string) => (json ? process.stderr : process.stdout).write(`${line}\n`);
    const summary = await runSimulation(parsed.options, { signal: stop.signal, report });
    process.stdout.write(`${json ? JSON.stringify(summary) : summaryLine(summary)}\n`);
    process.exit(0);
  } catch (err) {
    if (!(err instanceof ProvisionError || err instanceof TokensFileError)) throw err;
    process.stderr.write(`sluice-sim: ${err.message}\n`);
    process.exit(1);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`sluice-sim: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
