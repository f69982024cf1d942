// Builds the dashboard: dashboard/src/main.ts → dashboard/dist/app.js (+ uPlot's CSS). Runs before
// `npm start`, `npm run demo` and `npm test`, so a newcomer never runs it by hand.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, 'dist');

// esbuild is a dev dependency: an install without them (`npm ci --omit=dev`, the Docker image)
// runs the dashboard built before, and says so when there is none.
let build;
try {
  ({ build } = await import('esbuild'));
} catch {
  if (fs.existsSync(path.join(dist, 'app.js'))) process.exit(0);
  process.stderr.write('dashboard: esbuild is not installed (dev dependencies omitted) and dashboard/dist/ was never built: run `npm install`\n');
  process.exit(1);
}
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
