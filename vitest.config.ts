import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'server/**/*.test.ts', 'devices-sim/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Most test files spend their time waiting on sockets, child servers and fsync rather than on
    // the CPU (one worker kept a 2-core machine about a third busy): three at a time take 93 s
    // where one took 203 s.
    maxWorkers: 3,
    setupFiles: ['test/support/remove-temp-dirs.ts'],
  },
});
