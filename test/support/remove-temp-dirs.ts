import { afterAll } from 'vitest';
import { killLeftoverChildren } from './child-server.js';
import { removeTempDirs } from './test-server.js';

// A setup file: its afterAll is registered before any of the test file's, so it runs after them
// all (hooks run as a stack), once the servers using the dirs have stopped. A child server a failed
// test left running is killed first.
afterAll(() => {
  killLeftoverChildren();
  removeTempDirs();
});
