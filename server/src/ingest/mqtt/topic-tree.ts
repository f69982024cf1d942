/**
 * Topic filters → who subscribed, as a tree of topic levels, so that matching a published topic
 * costs its levels (times the wildcards on the way), never the number of subscriptions.
 * `+` matches one level, `#` the rest (and the parent level itself) [MQTT-4.7.1-2]; a topic
 * that starts with `$` is matched by no filter that starts with a wildcard [MQTT-4.7.2-1].
 */

interface Node<S> {
  children: Map<string, Node<S>> | undefined;
  subscribers: Map<S, number> | undefined;
}

const newNode = <S>(): Node<S> => ({ children: undefined, subscribers: undefined });

/** A topic filter as MQTT allows it [MQTT-4.7.1-1..3]: not empty, `#` only last and alone in its level, `+` alone in its level. */
export function validTopicFilter(filter: string): boolean {
  if (filter.length === 0 || filter.includes('\u0000')) return false;
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!;
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return false;
    if (level.includes('+') && level !== '+') return false;
  }
  return true;
}

/** A topic name a client may publish to: not empty, no wildcards [MQTT-3.3.2-2], no NUL. */
export function validTopicName(topic: string): boolean {
  return topic.length > 0 && !topic.includes('+') && !topic.includes('#') && !topic.includes('\u0000');
}

export class TopicTree<S> {
  private readonly root: Node<S> = newNode();

  /** `subscriber` subscribes to `filter` at `qos` (again: the QoS is replaced). */
  add(filter: string, subscriber: S, qos: number): void {
    let node = this.root;
    for (const level of filter.split('/')) {
      node.children ??= new Map();
      let child = node.children.get(level);
      if (!child) node.children.set(level, (child = newNode()));
      node = child;
    }
    (node.subscribers ??= new Map()).set(subscriber, qos);
  }

  remove(filter: string, subscriber: S): void {
    const path: [Node<S>, string][] = [];
    let node: Node<S> | undefined = this.root;
    for (const level of filter.split('/')) {
      const child: Node<S> | undefined = node.children?.get(level);
      if (!child) return;
      path.push([node, level]);
      node = child;
    }
    node.subscribers?.delete(subscriber);
    if (node.subscribers?.size === 0) node.subscribers = undefined;
    // Prune the branch back to the first node still in use.
    for (let i = path.length - 1; i >= 0; i--) {
      const [parent, level] = path[i]!;
      const child = parent.children!.get(level)!;
      if (child.subscribers || child.children?.size) break;
      parent.children!.delete(level);
      if (parent.children!.size === 0) parent.children = undefined;
    }
  }

  /** Every subscriber whose filters match `topic`, each once with the highest QoS of its matching filters. */
  match(topic: string): Map<S, number> {
    const found = new Map<S, number>();
    this.walk(this.root, topic.split('/'), 0, topic.charCodeAt(0) === 0x24 /* $ */, found);
    return found;
  }

  private walk(node: Node<S>, levels: string[], i: number, dollar: boolean, found: Map<S, number>): void {
    const children = node.children;
    if (!children) return;
    const wildcardsHere = !(dollar && i === 0);
    if (wildcardsHere) collect(children.get('#'), found);
    if (i === levels.length) return;
    const exact = children.get(levels[i]!);
    if (exact) {
      if (i === levels.length - 1) {
        collect(exact, found);
        collect(exact.children?.get('#'), found); // "a/#" matches "a"
      } else this.walk(exact, levels, i + 1, dollar, found);
    }
    const plus = wildcardsHere ? children.get('+') : undefined;
    if (plus) {
      if (i === levels.length - 1) {
        collect(plus, found);
        collect(plus.children?.get('#'), found);
      } else this.walk(plus, levels, i + 1, dollar, found);
    }
  }
}

function collect<S>(node: Node<S> | undefined, found: Map<S, number>): void {
  if (!node?.subscribers) return;
  for (const [subscriber, qos] of node.subscribers) {
    const had = found.get(subscriber);
    if (had === undefined || had < qos) found.set(subscriber, qos);
  }
}

/** True if `filter` matches `topic` (for retained messages, checked one by one). */
export function filterMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.charCodeAt(0) === 0x24 && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}
