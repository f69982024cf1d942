import v8 from 'node:v8';
import { afterAll } from 'vitest';

// In `npm run test:coverage` only (vitest.coverage.config.ts): a test worker is ended by vitest
// before Node would write its coverage at exit, so it writes what it has after each file.
afterAll(() => {
  if (process.env.NODE_V8_COVERAGE) v8.takeCoverage();
});
