// Reads Stryker's JSON report and holds the core to its targets (docs/testing.md):
//  - every mutated file has a mutation score of at least 85%;
//  - every mutant that survives is listed, with why, in test/mutation/surviving-mutants.txt;
//  - every line of that list still names a surviving mutant (a list that outlives its mutants lies).
// Prints one row per file; with --markdown, the table docs/testing.md carries.
// Usage: tsx test/mutation/check-scores.ts [--report reports/mutation/mutation.json] [--markdown]
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const TARGET_SCORE = 85;
const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');

interface ReportMutant {
  mutatorName: string;
  replacement?: string;
  location: { start: { line: number; column: number } };
  status: string;
}
interface Report {
  files: Record<string, { mutants: ReportMutant[] }>;
}

/** The line a survivor has in the list, before its reason: `file:line:column Mutator → replacement`. */
export function survivorKey(file: string, m: ReportMutant): string {
  const replacement = (m.replacement ?? '').replace(/\s+/g, ' ').trim();
  return `${file}:${m.location.start.line}:${m.location.start.column} ${m.mutatorName} → ${replacement}`;
}

const DETECTED = new Set(['Killed', 'Timeout']);
const UNDETECTED = new Set(['Survived', 'NoCoverage']);

function main(): void {
  const args = process.argv.slice(2);
  const reportArg = args.indexOf('--report');
  const reportPath = path.resolve(repo, reportArg >= 0 ? args[reportArg + 1]! : 'reports/mutation/mutation.json');
  const report = JSON.parse(fs.readFileSync(reportPath, 'utf8')) as Report;
  const listPath = path.join(here, 'surviving-mutants.txt');
  const listed = new Map<string, string>();
  for (const raw of fs.readFileSync(listPath, 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' — ');
    if (cut < 0) throw new Error(`${listPath}: no " — reason" in: ${line}`);
    listed.set(line.slice(0, cut).replace(/\s+/g, ' ').trim(), line.slice(cut + 3));
  }

  const rows: { file: string; score: number; killed: number; survived: number; listed: number }[] = [];
  const unlisted: string[] = [];
  const stillSurviving = new Set<string>();
  for (const [file, { mutants }] of Object.entries(report.files).sort(([a], [b]) => a.localeCompare(b))) {
    let detected = 0;
    let undetected = 0;
    let listedHere = 0;
    for (const m of mutants) {
      if (DETECTED.has(m.status)) detected++;
      else if (UNDETECTED.has(m.status)) {
        undetected++;
        const key = survivorKey(file, m);
        if (listed.has(key)) {
          listedHere++;
          stillSurviving.add(key);
        } else unlisted.push(`${key} (${m.status})`);
      }
    }
    const valid = detected + undetected;
    rows.push({ file, score: valid === 0 ? 100 : (100 * detected) / valid, killed: detected, survived: undetected, listed: listedHere });
  }
  const stale = [...listed.keys()].filter((key) => !stillSurviving.has(key) && report.files[key.slice(0, key.indexOf(':'))] !== undefined);

  const markdown = args.includes('--markdown');
  if (markdown) {
    console.log('| File | Score | Killed | Survived (listed) |');
    console.log('|---|---:|---:|---:|');
  }
  for (const r of rows) {
    const score = r.score.toFixed(1);
    if (markdown) console.log(`| \`${r.file}\` | ${score}% | ${r.killed} | ${r.survived} (${r.listed}) |`);
    else console.log(`${r.score >= TARGET_SCORE ? 'ok  ' : 'LOW '} ${score.padStart(5)}%  ${r.file}  (${r.killed} killed, ${r.survived} survived, ${r.listed} of them listed)`);
  }
  const low = rows.filter((r) => r.score < TARGET_SCORE);
  for (const key of unlisted) console.error(`not listed in test/mutation/surviving-mutants.txt: ${key}`);
  for (const key of stale) console.error(`listed but no longer surviving (remove the line): ${key}`);
  for (const r of low) console.error(`below ${TARGET_SCORE}%: ${r.file} at ${r.score.toFixed(1)}%`);
  if (low.length > 0 || unlisted.length > 0 || stale.length > 0) process.exitCode = 1;
}

main();
