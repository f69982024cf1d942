// Entry of the storage worker thread: loads the TypeScript module through tsx, whichever way
// the main thread was started (tsx CLI, node --import tsx, or a test runner).
import { tsImport } from 'tsx/esm/api';

await tsImport('./storage-worker.ts', import.meta.url);
