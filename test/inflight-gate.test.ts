import { describe, expect, it } from 'vitest';
import { InflightGate } from '../server/src/ingest/inflight-gate.js';

describe('the ingest in-flight gate', () => {
  it('lets connections read on while few messages are in flight', () => {
    const gate = new InflightGate<string>(2);
    const resumed: string[] = [];
    const push = (outcome: string) => resumed.push(outcome);
    gate.enter();
    gate.enter();
    gate.leave(push, 'a');
    gate.leave(push, 'b');
    expect(resumed).toEqual(['a', 'b']);
    expect(gate.stats()).toEqual({ inflight: 0, held: 0 });
  });

  it('holds connections while more than the limit are in flight, and lets them go in order as the log catches up', () => {
    const gate = new InflightGate<string>(2);
    const resumed: string[] = [];
    const push = (outcome: string) => resumed.push(outcome);
    for (let i = 0; i < 5; i++) gate.enter();
    gate.leave(push, 'a'); // 4 in flight
    gate.leave(push, 'b'); // 3 in flight
    expect(resumed).toEqual([]);
    expect(gate.stats()).toEqual({ inflight: 3, held: 2 });
    gate.leave(push, 'c'); // 2: at the limit, all go
    expect(resumed).toEqual(['c', 'a', 'b']);
    expect(gate.stats()).toEqual({ inflight: 2, held: 0 });
  });

  it('stops releasing as soon as a released connection brings the count over the limit again', () => {
    const gate = new InflightGate<string>(1);
    const resumed: string[] = [];
    const push = (outcome: string) => resumed.push(outcome);
    for (let i = 0; i < 4; i++) gate.enter();
    gate.leave(push, 'a');
    gate.leave(push, 'b');
    // Releasing 'c' reads that connection's next packets at once: two more messages arrive.
    gate.leave((o) => { resumed.push(o); gate.enter(); gate.enter(); }, 'c');
    expect(resumed).toEqual(['c']);
    expect(gate.stats()).toEqual({ inflight: 3, held: 2 });
  });
});
