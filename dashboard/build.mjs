// Builds the dashboard: dashboard/src/main.ts → dashboard/dist/app.js (+ uPlot's CSS). Runs before
// `npm start`, `npm run demo` and `npm test`, so a newcomer never runs it by hand.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, 'dist');
fs.mkdirSync(dist, { recursive: true });
await build({
  entryPoints: [path.join(here, 'src/main.ts')],
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: true,
  outfile: path.join(dist, 'app.js'),
  logLevel: 'warning',
});
fs.copyFileSync(path.join(here, '../node_modules/uplot/dist/uPlot.min.css'), path.join(dist, 'uplot.css'));
