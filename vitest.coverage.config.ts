import { defineConfig, mergeConfig } from 'vitest/config';
import base from './vitest.config.js';

/**
 * `npm run test:coverage` (.c8rc.json): c8 collects V8's coverage from every process and thread
 * of the run — the test workers, the servers and CLIs the tests start as child processes, the
 * storage worker thread. For c8 to map it back to the TypeScript, every process must load the code
 * the same way, through tsx (which leaves source maps where V8's coverage finds them), so here
 * the test workers import natively with tsx instead of through Vite's module runner.
 */
export default mergeConfig(base, defineConfig({
  test: {
    execArgv: ['--import', 'tsx'],
    experimental: { viteModuleRunner: false },
    setupFiles: ['test/support/write-v8-coverage.ts'],
  },
}));
