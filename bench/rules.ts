/**
 * The rule engine on in-memory messages, one core: a realistic chain
 * filter → sample → enrich → transform → save, over 1,000 devices; and the expression libraries
 * considered for conditions and computed values, on the same expressions.
 *
 * Usage: npm run bench:rules -- [--messages 2000000]
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { Environment } from '@marcbachmann/cel-js';
import { Parser } from 'expr-eval';
import { compileExpression as compileFiltrex } from 'filtrex';
import { compileRule } from '../server/src/rules/compiler.js';
import { compileExpression } from '../server/src/rules/expression.js';
import type { RuleMessage, RuleSinks } from '../server/src/rules/message.js';
import { RuleEngine } from '../server/src/rules/rule-engine.js';

const { values: args } = parseArgs({ options: { messages: { type: 'string', default: '2000000' } } });
const N = Number(args.messages);

const devices = Array.from({ length: 1000 }, (_, i) => ({ id: `dev-${i}`, name: `room-${i}`, type: i % 2 ? 'room-sensor' : 'machine', attributes: { room: `R${i % 20}` } }));
const messages: RuleMessage[] = Array.from({ length: 100_000 }, (_, i) => ({
  deviceId: devices[i % 1000]!.id, ts: 1_700_000_000_000 + i * 10, values: { temperature: 18 + (i % 100) / 10, humidity: 40 + (i % 30) },
  metadata: {}, device: devices[i % 1000]!, offset: i, partition: 0,
}));

let saved = 0;
const sinks: RuleSinks = { save: () => { saved++; }, republish: () => {}, webhook: () => {}, window: () => {}, alarm: () => {}, log: () => {} };
const engine = new RuleEngine();
engine.put(compileRule({
  id: 'chain',
  devices: { types: ['room-sensor', 'machine'] },
  nodes: [
    { id: 'filter', type: 'filter', if: 'has(values.temperature) && values.temperature > 19.0' },
    { id: 'sample', type: 'sample', every: 2 },
    { id: 'enrich', type: 'enrich', device: ['name'], attributes: ['room'], constants: { site: 'plant-1' } },
    { id: 'transform', type: 'transform', keep: ['temperature', 'humidity'], rename: { temperature: 'temp_f' }, convert: { temp_f: { from: 'C', to: 'F' } }, set: { dew: 'values.temp_f - (100.0 - values.humidity) / 5.0' } },
    { id: 'save', type: 'save' },
  ],
}, sinks));

// Warm up, then measure batches of 1,000 as the consumer hands them over.
const batches = Array.from({ length: messages.length / 1000 }, (_, b) => messages.slice(b * 1000, (b + 1) * 1000));
for (let i = 0; i < 20; i++) engine.process(batches[i % batches.length]!);
saved = 0;
const t0 = performance.now();
let done = 0;
for (let b = 0; done < N; b++) {
  engine.process(batches[b % batches.length]!);
  done += 1000;
}
const sec = (performance.now() - t0) / 1000;
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
console.log(`${new Date().toISOString().slice(0, 10)}  ${os.cpus()[0]?.model ?? '?'}  node ${process.version}`);
console.log(`chain filter → sample → enrich → transform → save: ${fmt(done / sec)} messages/s (${fmt(saved)} saved of ${fmt(done)})`);

// The expression libraries, on a condition and on arithmetic.
const vars = { values: { temperature: 21.5, humidity: 45 }, ts: 0, device: devices[1]!, metadata: {} };
const M = 2_000_000;
function rate(f: () => unknown): number {
  for (let i = 0; i < 10_000; i++) f();
  const t = performance.now();
  for (let i = 0; i < M; i++) { vars.values.temperature = 15 + (i % 20); f(); }
  return M / ((performance.now() - t) / 1000);
}
const cel = new Environment({ unlistedVariablesAreDyn: true });
const ours = [compileExpression('values.temperature > 25.0 && device.type == "room-sensor"'), compileExpression('values.temperature * 9.0 / 5.0 + 32.0')];
const celRaw = [cel.parse('values.temperature > 25.0 && device.type == "room-sensor"'), cel.parse('values.temperature * 9.0 / 5.0 + 32.0')];
const parser = new Parser();
const exprEval = [parser.parse('values.temperature > 25 and device.type == "room-sensor"'), parser.parse('values.temperature * 9 / 5 + 32')];
const filtrexOptions = { customProp: (name: string, get: (n: string) => unknown, obj: Record<string, unknown>) => name.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)?.[k], obj) };
const filtrex = [compileFiltrex('values.temperature > 25 and device.type == "room-sensor"', filtrexOptions as never), compileFiltrex('values.temperature * 9 / 5 + 32', filtrexOptions as never)];
console.log('\n| library | condition evals/s | arithmetic evals/s | notes |');
console.log('| --- | --- | --- | --- |');
console.log(`| CEL (@marcbachmann/cel-js) as Sluice uses it | ${fmt(rate(() => ours[0]!(vars)))} | ${fmt(rate(() => ours[1]!(vars)))} | typed, checked at load, no JS reachable |`);
console.log(`| CEL (@marcbachmann/cel-js) bare | ${fmt(rate(() => celRaw[0]!(vars)))} | ${fmt(rate(() => celRaw[1]!(vars)))} | |`);
console.log(`| expr-eval | ${fmt(rate(() => exprEval[0]!.evaluate(vars as never)))} | ${fmt(rate(() => exprEval[1]!.evaluate(vars as never)))} | npm package unmaintained; advisories GHSA-8gw3-rxh4-v6jx (prototype pollution) and GHSA-jc85-fpwf-qm7x (CVE-2025-12735, code execution) |`);
console.log(`| filtrex | ${fmt(rate(() => filtrex[0]!(vars)))} | ${fmt(rate(() => filtrex[1]!(vars)))} | compiles to JS with new Function; dotted names need a custom accessor |`);
console.log(`| plain JS (reference, not safe) | ${fmt(rate(() => vars.values.temperature > 25 && vars.device.type === 'room-sensor'))} | ${fmt(rate(() => vars.values.temperature * 9 / 5 + 32))} | |`);
