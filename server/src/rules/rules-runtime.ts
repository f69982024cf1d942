import type { Consumer } from '../log/consumer.js';
import type { Log } from '../log/types.js';
import type { Logger } from '../logger.js';
import type { Db } from '../storage/database.js';
import type { DeviceRegistry } from '../storage/device-registry.js';
import type { StoredBatch, TimeSeriesStore } from '../storage/timeseries.js';
import type { RuleSinks } from './message.js';
import { RuleEngine } from './rule-engine.js';
import { RuleService } from './rule-service.js';
import { startRulesConsumer } from './rules-consumer.js';
import { WebhookSender } from './webhook-sender.js';

export interface RulesRuntime {
  engine: RuleEngine;
  service: RuleService;
  webhooks: WebhookSender;
  /** Starts the `rules` consumer group (after the broker is up, for republish). */
  start(publish: RuleSinks['republish']): void;
  /** Resolves once the rules have seen everything in the log now. */
  caughtUp(): Promise<void>;
  stop(): Promise<void>;
}

export interface RulesRuntimeOptions {
  db: Db;
  rulesDir: string;
  log: Log;
  registry: DeviceRegistry;
  store: TimeSeriesStore;
  logger: Logger;
  onOffsetReset?: (partition: number) => void;
}

/** The rule engine with its rules, its sinks and its consumer group, wired together. */
export function createRulesRuntime(o: RulesRuntimeOptions): RulesRuntime {
  const engine = new RuleEngine();
  const webhooks = new WebhookSender(o.logger.child({ sink: 'webhook' }));
  let publish: RuleSinks['republish'] = () => {};
  let saved: StoredBatch = { telemetry: [], attributes: [] };
  const sinks: RuleSinks = {
    save(deviceId, ts, values) {
      saved.telemetry.push({ deviceId, entries: [{ ts, values }] });
    },
    republish: (topic, payload, qos, retain) => publish(topic, payload, qos, retain),
    webhook: (request) => webhooks.send(request),
    // The window engine and alarms land with their issues; until then these sinks only count.
    window: () => {},
    alarm: () => {},
    log: (level, fields, text) => o.logger[level](fields, text),
  };
  const service = new RuleService(o.db, o.rulesDir, engine, sinks, o.logger);
  let consumer: Consumer | undefined;
  return {
    engine, service, webhooks,
    start(publishFn) {
      publish = publishFn;
      consumer = startRulesConsumer({
        log: o.log, registry: o.registry, engine, logger: o.logger, onOffsetReset: o.onOffsetReset,
        afterBatch() {
          if (saved.telemetry.length === 0) return;
          const batch = saved;
          saved = { telemetry: [], attributes: [] };
          o.store.write(batch);
        },
      });
    },
    caughtUp: async () => consumer?.caughtUp(),
    async stop() {
      await consumer?.stop();
      webhooks.close();
    },
  };
}
