import type { NodeKind } from './node-kind.js';
import { alarmNode } from './nodes/alarm.js';
import { deduplicateNode } from './nodes/deduplicate.js';
import { enrichNode } from './nodes/enrich.js';
import { filterNode } from './nodes/filter.js';
import { logNode } from './nodes/log.js';
import { republishNode } from './nodes/republish.js';
import { sampleNode } from './nodes/sample.js';
import { saveNode } from './nodes/save.js';
import { switchNode } from './nodes/switch.js';
import { transformNode } from './nodes/transform.js';
import { webhookNode } from './nodes/webhook.js';
import { windowNode } from './nodes/window.js';

/** Every node kind by its `type`. A new kind: one file in nodes/ and one line here (and the schema). */
export const nodeKinds: ReadonlyMap<string, NodeKind> = new Map([
  filterNode, sampleNode, deduplicateNode, enrichNode, transformNode, switchNode,
  saveNode, windowNode, alarmNode, republishNode, webhookNode, logNode,
].map((k) => [k.type, k]));
