import type { Consumer } from '../log/consumer.js';
import type { Log } from '../log/types.js';
import type { Logger } from '../logger.js';
import type { Db } from '../storage/database.js';
import type { DeviceRegistry } from '../storage/device-registry.js';
import type { StoredBatch } from '../storage/timeseries.js';
import type { StorageWorkerClient } from '../storage/storage-worker-client.js';
import type { RecentEntries } from '../telemetry/recent-entries.js';
import type { RuleSinks } from './message.js';
import { RuleEngine } from './rule-engine.js';
import { RuleService } from './rule-service.js';
import { startRulesConsumer, startWindowRulesConsumer, WINDOW_RULES_GROUP } from './rules-consumer.js';
import { WebhookSender, type WebhookLimits } from './webhook-sender.js';
import { RateLimitedLog } from './limit-log.js';
import { RuleLimitError, ruleLimits, type RuleLimits } from './rule-limits.js';
import type { DeviceTelemetryKeys } from '../ingest/device-telemetry-keys.js';
import { WindowEngine } from '../windows/window-engine.js';
import { WindowStore, type StoredWindowResult } from '../windows/window-store.js';
import { WindowCheckpoint } from '../windows/window-checkpoint.js';
import { WindowResultsTopic } from './window-results-topic.js';
import { AlarmOutbox, type AlarmWebhookLimits, type OutboxStats } from '../alarms/alarm-outbox.js';
import { AlarmService, publicAlarm } from '../alarms/alarm-service.js';
import type { Alarm, AlarmChange } from '../alarms/alarm-store.js';
import { runningAlarmNode } from '../alarms/alarm-node-spec.js';
import type { Clock } from '../clock.js';
import { ALARM_TOPIC_PREFIX } from '../ingest/device-topics.js';

/** The log topic window results are appended to. */
export const WINDOWS_TOPIC = 'windows';

export interface RulesRuntime {
  alarms: AlarmService;
  /** After every alarm change (the live push). */
  onAlarm(listener: (alarm: Alarm, change: AlarmChange) => void): void;
  engine: RuleEngine;
  service: RuleService;
  webhooks: WebhookSender;
  /** What the alarm webhook outbox has done (counts since start, pending and in flight now). */
  alarmOutboxStats: Readonly<OutboxStats>;
  windows: WindowEngine;
  windowStore: WindowStore;
  /** Where else window results go once stored (the live push). */
  onWindowResult(listener: (r: StoredWindowResult) => void): void;
  /** Starts the `rules` consumer group (after the broker is up, for republish). */
  start(publish: RuleSinks['republish']): void;
  /** Resolves once the rules have seen everything in the log now. */
  caughtUp(): Promise<void>;
  stop(): Promise<void>;
}

const WINDOW_TICK_MS = 1000;

export interface RulesRuntimeOptions {
  db: Db;
  rulesDir: string;
  log: Log;
  registry: DeviceRegistry;
  /** Where rules' saved values, window results and checkpoints are written (the storage worker). */
  writes: Pick<StorageWorkerClient, 'writeSaved' | 'writeWindowResult' | 'writeCheckpoint' | 'whenDurable'>;
  /** Values of the latest telemetry records as ingest parsed them (the rules group takes them from here). */
  recentEntries?: RecentEntries;
  /** The cap on distinct telemetry keys per device, which values `save` nodes store are held to as well as devices' own. */
  deviceKeys?: DeviceTelemetryKeys;
  /** The process's logger: the runtime names its parts' components itself (rules, alarms, alarm-outbox). */
  logger: Logger;
  onOffsetReset?: (partition: number) => void;
  onWindowsOffsetReset?: (partition: number) => void;
  /** Backoff of alarm webhooks: first retry after firstMs, then doubling up to maxMs. */
  alarmRetry?: { firstMs: number; maxMs: number };
  /** Bounds on rules (rule-limits.ts; defaults there); docs/limits.md names their flags. */
  limits?: Partial<RuleLimits>;
  /** Bounds on webhook nodes' calls (webhook-sender.ts); `maxTimeoutMs` is limits.webhookMaxTimeoutMs. */
  webhookLimits?: Partial<Omit<WebhookLimits, 'maxTimeoutMs'>>;
  /** The server's clock (alarms: when a `for` comes due, operators' ack and clear times); the system's by default. */
  clock?: Clock;
  /** Bounds on alarm notifications (alarm-outbox.ts). */
  alarmWebhookLimits?: Partial<AlarmWebhookLimits>;
}

/** The rule engine with its rules, its sinks and its consumer group, wired together. */
export function createRulesRuntime(o: RulesRuntimeOptions): RulesRuntime {
  const engine = new RuleEngine();
  // One child per component, each from the root: a child of a child would repeat the `component` key.
  const logger = o.logger.child({ component: 'rules' });
  const limits = ruleLimits(o.limits);
  // A limit can be hit by every message: logged once per rule node and limit every 10 s at most.
  const limitLog = new RateLimitedLog(logger);
  const onLimit = (rule: string, node: string, limit: string, message: string) =>
    limitLog.warn(`${rule}\u0000${node}\u0000${limit}`, { rule, node, limit }, `rule ${rule}, node ${node}: ${message}`);
  engine.onLimit = onLimit;
  const webhooks = new WebhookSender(logger.child({ sink: 'webhook' }), undefined, { ...o.webhookLimits, maxTimeoutMs: limits.webhookMaxTimeoutMs });
  let publish: RuleSinks['republish'] = () => {};
  const alarmListeners: ((alarm: Alarm, change: AlarmChange) => void)[] = [];
  const outbox = new AlarmOutbox(o.db, o.logger.child({ component: 'alarm-outbox' }), o.alarmRetry, undefined, o.alarmWebhookLimits);
  const alarms = new AlarmService(o.db, outbox, {
    changed: (alarm, change) => { for (const l of alarmListeners) l(alarm, change); },
    notify: (alarm, change) => publish(`${ALARM_TOPIC_PREFIX}${alarm.type}`, JSON.stringify({ change, alarm: publicAlarm(alarm) }), 1, false),
  }, o.logger.child({ component: 'alarms' }), {
    now: o.clock && (() => o.clock!.now()),
    // What the timer checks a due `for` against: the alarm node as its rule is now.
    alarmNode: (rule, node) => runningAlarmNode(engine.get(rule), node),
  });
  let saved: StoredBatch = { telemetry: [], attributes: [] };
  const windowStore = new WindowStore(o.db);
  const windowListeners: ((r: StoredWindowResult) => void)[] = [];
  const windowsTopic = new WindowResultsTopic(o.log, WINDOWS_TOPIC, logger);
  const windows = new WindowEngine({
    result(r) {
      const slash = r.rule.lastIndexOf('/');
      // `replaces`: the starts of results this one supersedes (merged session windows); the store
      // deletes them, and the live push and the `windows` record carry them for dashboards and rules.
      const stored: StoredWindowResult = {
        rule: r.rule.slice(0, slash), node: r.rule.slice(slash + 1), group: r.group, start: r.start, end: r.end, values: r.values, final: r.final,
        ...(r.replaces ? { replaces: r.replaces } : {}),
      };
      // Other consumers (alarms, rules) read window results from the `windows` topic. A result a
      // resume from the checkpoint emits again, exactly as it is there already, is not appended
      // twice, nor pushed live again; it is stored again (the same row), in case SQLite lost it.
      const record = JSON.stringify({ ...stored, update: r.update });
      const replay = windowsTopic.isReplay(record);
      if (!replay) windowsTopic.append(`${stored.rule}/${stored.group}`, record, r.end);
      // Stored by the storage worker; pushed live once it is (so GET /api/windows has it then).
      o.writes.writeWindowResult(r, Date.now()).then(
        () => { if (!replay) for (const l of windowListeners) l(stored); },
        (err: unknown) => logger.error({ err, rule: stored.rule, group: stored.group, start: stored.start }, 'could not store a window result'));
    },
    late() {},
  });
  // Exactly-once window results: resume from the last checkpoint of state and offsets.
  const checkpoint = new WindowCheckpoint(o.db);
  const restored = checkpoint.load();
  if (restored) windows.restore(restored.state);
  const processed: number[] = restored ? [...restored.offsets] : [];
  // What the windows topic got after the restored checkpoint: a resume emits those results again.
  const replayLoaded = restored?.windowsEnd
    ? windowsTopic.loadReplayed(restored.windowsEnd).catch((err: unknown) => logger.warn({ err }, 'could not read the windows topic back; results emitted again after the checkpoint may be appended twice'))
    : Promise.resolve();
  let dirty = false;
  /**
   * The state and offsets as they are now, written after every window result emitted before
   * (the storage worker keeps the order) and once the windows topic holds them all, with where
   * it ended; a failed write is tried again at the next tick.
   */
  const saveCheckpoint = async () => {
    if (!dirty) return;
    dirty = false;
    const offsets = [...processed];
    const state = windows.snapshot();
    const mark = windowsTopic.mark();
    try {
      const windowsEnd = await windowsTopic.endsAt(mark);
      // A result the topic lacks: no later checkpoint may say it was emitted (a restart from the last good one emits it again).
      if (windowsEnd === undefined) return;
      await o.writes.writeCheckpoint({ offsets, state, windowsEnd }, Date.now());
    } catch (err) {
      dirty = true;
      logger.error({ err }, 'could not save the window checkpoint; trying again');
    }
  };
  engine.onChange = () => windows.retainRules(new Set(engine.rules().map((r) => r.id)));
  // Windows fire on the tick too: not before the windows topic was read back, else a result the
  // replay emits again would not be recognised.
  let replayRead = false;
  void replayLoaded.then(() => { replayRead = true; });
  const tick = setInterval(() => {
    if (replayRead) windows.tick();
    void saveCheckpoint();
  }, WINDOW_TICK_MS);
  tick.unref();
  const sinks: RuleSinks = {
    save(deviceId, ts, values) {
      const entries = [{ ts, values }];
      // A save that would give the device keys beyond its cap fails in its node (counted under
      // `device_keys`), as a device's own message would be rejected: each key is a series of its own.
      const refused = o.deviceKeys?.admit(deviceId, entries);
      if (refused !== undefined) throw new RuleLimitError('device_keys', `save: ${refused}`);
      saved.telemetry.push({ deviceId, entries });
    },
    republish: (topic, payload, qos, retain) => publish(topic, payload, qos, retain),
    webhook: (request) => webhooks.send(request),
    window: (rule, node, compiled, message) => windows.handle(rule, node, compiled, message),
    alarm: (rule, node, compiled, message) => alarms.evaluate(rule, node, compiled, message),
    log: (level, fields, text) => logger[level](fields, text),
  };
  const service = new RuleService(o.db, o.rulesDir, engine, sinks, logger, { limits, onLimit });
  /**
   * What `save` nodes collected during a batch, written in one transaction after it; the batch
   * is committed only once that is done (at-least-once, like the storage group).
   */
  const flushSaved = async () => {
    if (saved.telemetry.length === 0) return;
    const batch = saved;
    saved = { telemetry: [], attributes: [] };
    await o.writes.writeSaved(batch);
  };
  let consumer: Consumer | undefined;
  let windowConsumer: Consumer | undefined;
  let consumersStarted: Promise<void> | undefined;
  let stopping = false;
  return {
    engine, service, webhooks, windows, windowStore, alarms, alarmOutboxStats: outbox.stats,
    onAlarm: (listener) => { alarmListeners.push(listener); },
    onWindowResult: (listener) => { windowListeners.push(listener); },
    start(publishFn) {
      publish = publishFn;
      outbox.start();
      consumersStarted = replayLoaded.then(() => { if (!stopping) startConsumers(); });
    },
    caughtUp: async () => {
      await consumersStarted;
      await consumer?.caughtUp();
      await windowConsumer?.caughtUp();
      // The rules-windows commits wait for durability: queued before this, they have landed after it.
      await o.writes.whenDurable();
    },
    async stop() {
      stopping = true;
      clearInterval(tick);
      alarms.stop();
      outbox.stop();
      await consumersStarted;
      await consumer?.stop();
      await windowConsumer?.stop();
      await saveCheckpoint();
      webhooks.close();
    },
  };

  /** The rules groups, once the windows topic was read back (a replay must not start before). */
  function startConsumers(): void {
    consumer = startRulesConsumer({
      log: o.log, registry: o.registry, engine, logger, onOffsetReset: o.onOffsetReset,
      startAt: (partition) => processed[partition], recentEntries: o.recentEntries,
      async afterBatch(partition, nextOffset) {
        await flushSaved();
        processed[partition] = nextOffset;
        dirty = true;
      },
    });
    windowConsumer = startWindowRulesConsumer({
      log: o.log, registry: o.registry, engine, logger, topic: WINDOWS_TOPIC, onOffsetReset: o.onWindowsOffsetReset,
      afterBatch: flushSaved,
      // What a batch saved is committed to SQLite when its handler resolves, durable only at the
      // worker's next WAL checkpoint: the group's offset waits for that, so a lost WAL is re-read.
      commit: (partition, nextOffset) => o.writes.whenDurable().then(
        () => o.log.commit(WINDOW_RULES_GROUP, WINDOWS_TOPIC, partition, nextOffset),
        (err: unknown) => logger.warn({ err, partition, nextOffset }, 'rules-windows: not committing an offset SQLite did not make durable')),
    });
    // `for` conditions come due on the timer once the rules have read what the log held at
    // start: a streak that a message not read yet would end is not raised first. Results the
    // replay did not emit again by then were not the same: nothing more to recognise.
    void Promise.all([consumer.caughtUp(), windowConsumer.caughtUp()]).then(() => {
      windowsTopic.forgetReplayed();
      alarms.startDueChecks();
    });
  }
}
