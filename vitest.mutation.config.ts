import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

/**
 * The tests Stryker runs against each mutant (stryker.config.mjs): the focused, in-process tests
 * of the core files. A mutant is switched on in the test process only, so tests of child servers,
 * the CLI or the browser could never kill one; and whole-server tests would cost seconds per
 * mutant for mutants these already kill. Everything still runs in `npm test`.
 * (Not mergeConfig: it would append this include list to the base's instead of replacing it.)
 */
export const mutationTests = [
  // the log
  'test/file-log.test.ts', 'test/log-*.test.ts', 'test/consumer-*.test.ts',
  // ingest, payloads, the admin token
  'test/ingest-*.test.ts', 'test/telemetry-payload.test.ts', 'test/payload-*.test.ts', 'test/auth-*.test.ts',
  // rule nodes and the window operator
  'test/rules-engine.test.ts', 'test/rule-node-*.test.ts', 'test/deduplicate-limits.test.ts',
  'test/window-operator.test.ts', 'test/window-operator-*.test.ts', 'test/session-windows.test.ts', 'test/window-limits.test.ts',
  // alarms and the time-series store
  'test/alarm-model.test.ts', 'test/alarm-store-*.test.ts', 'test/timeseries-store.test.ts', 'test/database-migration.test.ts',
];

/** Left out of the globs above: a child process (it can kill no mutant), or a whole server or a long property run per mutant. */
const slowOrOutOfProcess = ['test/consumer-crash.test.ts', 'test/alarm-store-race.test.ts', 'test/consumer-offsets-damage.test.ts', 'test/log-api.test.ts', 'test/log-model.test.ts'];

export default defineConfig({ ...base, test: { ...base.test, include: mutationTests, exclude: [...slowOrOutOfProcess, 'node_modules/**'] } });
