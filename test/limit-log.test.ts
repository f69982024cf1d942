import { describe, expect, it } from 'vitest';
import { RateLimitedLog } from '../server/src/rules/limit-log.js';
import { capturingLogger } from './support/test-server.js';

describe('limit hits are logged rate-limited', () => {
  it('logs the first hit of a kind at once, then at most once per interval, saying how many went unlogged', () => {
    const { logger, lines } = capturingLogger();
    let now = 0;
    const log = new RateLimitedLog(logger, 10_000, () => now);
    for (let i = 0; i < 100; i++) log.warn('r/f/eval_budget', { rule: 'r' }, 'over budget');
    log.warn('r/g/eval_budget', { rule: 'r' }, 'another node');
    expect(lines.map((l) => l.msg)).toEqual(['over budget', 'another node']);
    now = 10_000;
    log.warn('r/f/eval_budget', { rule: 'r' }, 'over budget');
    expect(lines[2]).toMatchObject({ msg: 'over budget (and 99 more like it since the last line)', unlogged: 99, rule: 'r', level: 40 });
  });
});
