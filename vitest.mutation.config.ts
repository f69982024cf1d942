import { defineConfig, mergeConfig } from 'vitest/config';
import base from './vitest.config.js';

/**
 * The tests Stryker runs against each mutant (stryker.config.mjs): those whose code under test runs
 * in the test process. Tests that drive a child server, a browser or the CLI cannot see a mutant
 * (the mutant is switched on in the test process only), so they only cost time here; they still
 * run in `npm test`.
 */
export const outOfProcessTests = [
  'test/alarm-crash.test.ts',
  'test/bench-chart.test.ts',
  'test/cli.test.ts',
  'test/compose-file.test.ts',
  'test/crash-recovery.test.ts',
  'test/dashboard.test.ts',
  'test/dashboard-files.test.ts',
  'test/data-dir-lock.test.ts',
  'test/demo.test.ts',
  'test/disk-full.test.ts',
  'test/docker-files.test.ts',
  'test/readme.test.ts',
  'test/rule-sink-keys-crash.test.ts',
  'test/rules-checkpoint-offsets.test.ts',
  'test/secrets.test.ts',
  'test/simulator.test.ts',
  'test/simulator-load.test.ts',
  'test/simulator-reconnect.test.ts',
  'test/sqlite-contention.test.ts',
  'test/stop-while-storage-fails.test.ts',
  'test/storage-durability.test.ts',
  'test/windows-crash.test.ts',
  'test/windows-topic-crash.test.ts',
];

export default mergeConfig(base, defineConfig({ test: { exclude: outOfProcessTests } }));
