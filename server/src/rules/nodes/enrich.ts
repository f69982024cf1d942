import type { NodeKind } from '../node-kind.js';

/**
 * `{"type": "enrich", "device": ["name", "type"], "attributes": ["room"], "constants": {...},
 * "computed": {"k": "<expression>"}}`: adds to the message's metadata (device fields as
 * `deviceName`/`deviceType`, server attributes under their own names).
 */
export const enrichNode: NodeKind = {
  type: 'enrich',
  compile(spec, ctx) {
    const deviceFields = (spec.device as ('name' | 'type')[] | undefined) ?? [];
    const attributes = (spec.attributes as string[] | undefined) ?? [];
    const constants = Object.entries((spec.constants as Record<string, unknown> | undefined) ?? {});
    const computed = Object.entries((spec.computed as Record<string, string> | undefined) ?? {})
      .map(([name, source]) => [name, ctx.expression(source, `computed.${name}`)] as const);
    return (message) => {
      const metadata: Record<string, unknown> = { ...message.metadata };
      for (const f of deviceFields) metadata[f === 'name' ? 'deviceName' : 'deviceType'] = message.device[f];
      for (const a of attributes) if (a in message.device.attributes) metadata[a] = message.device.attributes[a];
      for (const [k, v] of constants) metadata[k] = v;
      const enriched = { ...message, metadata };
      for (const [k, expression] of computed) metadata[k] = expression(enriched);
      return enriched;
    };
  },
};
