import type { RuleDevice } from './message.js';
import type { RuleEngine } from './rule-engine.js';

/**
 * Whether any enabled telemetry rule selects a device, asked per message on ingest's thread (is
 * it worth keeping its parsed values for the rules group?). The engine's answer runs every rule's
 * selector — attribute matches included — so it is cached per device object: the registry
 * replaces a device's object when its type or attributes change, and the whole cache goes when the
 * rule set changes. Weakly held: a deleted device's answer goes with its object.
 */
export class DevicesRulesWant {
  private answers = new WeakMap<RuleDevice, boolean>();
  private generation = -1;

  constructor(private readonly engine: RuleEngine) {}

  wants(device: RuleDevice): boolean {
    if (this.generation !== this.engine.generation) {
      this.generation = this.engine.generation;
      this.answers = new WeakMap();
    }
    let wanted = this.answers.get(device);
    if (wanted === undefined) {
      wanted = this.engine.wantsDevice(device);
      this.answers.set(device, wanted);
    }
    return wanted;
  }
}
