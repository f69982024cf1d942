/**
 * The QoS 2 PUBLISHes each session has received and not yet seen released (PUBREL), by packet
 * id: what [MQTT-4.3.3-2] makes the receiver keep so that a retransmission is not processed
 * twice. Sluice ingests a QoS 2 message when its PUBLISH arrives (method A of MQTT 3.1.1 §4.3.3),
 * so a receipt keeps no payload — only the promise of the first copy's append, which a
 * retransmission waits on before it is answered PUBREC.
 */
export class Qos2Receipts {
  private readonly bySession = new Map<string, Map<number, Promise<unknown>>>();

  /** The first copy's append, if `messageId` is awaiting PUBREL in `sessionId`. */
  get(sessionId: string, messageId: number): Promise<unknown> | undefined {
    return this.bySession.get(sessionId)?.get(messageId);
  }

  /** How many QoS 2 messages `sessionId` has awaiting PUBREL. */
  count(sessionId: string): number {
    return this.bySession.get(sessionId)?.size ?? 0;
  }

  record(sessionId: string, messageId: number, appended: Promise<unknown>): void {
    let receipts = this.bySession.get(sessionId);
    if (!receipts) this.bySession.set(sessionId, (receipts = new Map()));
    receipts.set(messageId, appended);
  }

  /** PUBREL arrived (or, with `only`, the append that recorded it failed): forgets the receipt. */
  release(sessionId: string, messageId: number, only?: Promise<unknown>): boolean {
    const receipts = this.bySession.get(sessionId);
    if (!receipts || !receipts.has(messageId) || (only && receipts.get(messageId) !== only)) return false;
    receipts.delete(messageId);
    if (receipts.size === 0) this.bySession.delete(sessionId);
    return true;
  }

  /** The session ended or was discarded [MQTT-3.1.2-6]. */
  clear(sessionId: string): void {
    this.bySession.delete(sessionId);
  }
}
