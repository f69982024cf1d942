// Mutation testing of the core (docs/testing.md): `npm run test:mutation`.
/** The files whose tests must kill at least 85% of their mutants (test/mutation/check-scores.ts). */
export const coreFiles = [
  'server/src/log/segment.ts',
  'server/src/log/batch-codec.ts',
  'server/src/log/partition-log.ts',
  'server/src/log/consumer.ts',
  'server/src/log/group-offsets.ts',
  'server/src/ingest/ingest.ts',
  'server/src/telemetry/payload.ts',
  'server/src/windows/window-operator.ts',
  'server/src/rules/nodes/*.ts',
  'server/src/alarms/alarm-service.ts',
  'server/src/alarms/alarm-store.ts',
  'server/src/storage/timeseries.ts',
  'server/src/api/auth.ts',
];

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  plugins: ['@stryker-mutator/vitest-runner'],
  vitest: { configFile: 'vitest.mutation.config.ts', related: false },
  mutate: coreFiles,
  coverageAnalysis: 'perTest',
  // Mutants in code that runs once at load (constants, schemas) would need a fresh process each.
  ignoreStatic: true,
  incremental: true,
  // Committed: a run on a clean clone retests only the mutants and tests that changed since.
  incrementalFile: 'test/mutation/stryker-incremental.json',
  concurrency: 2,
  timeoutMS: 15_000,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  thresholds: { high: 85, low: 70, break: null },
  tempDirName: '.stryker-tmp',
  ignorePatterns: ['reports', 'dashboard/dist', 'node_modules', '.stryker-*', 'coverage', 'test-peers'],
};
