/**
 * Draws bench/results/e2e.json as bench/results/e2e.svg (the chart in BENCHMARKS.md).
 * Usage: npm run bench:chart -- [results.json] [chart.svg]
 */
import fs from 'node:fs';
import { renderBenchChart } from './support/chart.js';
import { RESULTS_FILE } from './support/harness.js';
import type { BenchResults } from './support/results.js';

const input = process.argv[2] ?? RESULTS_FILE;
const output = process.argv[3] ?? input.replace(/\.json$/, '.svg');
const results = JSON.parse(fs.readFileSync(input, 'utf8')) as BenchResults;
fs.writeFileSync(output, await renderBenchChart(results));
console.log(`wrote ${output}`);
