import { api, esc } from '../api.js';

interface Rule { id: string; name?: string; enabled?: boolean; source: string; file?: string; nodes: { id: string; type: string }[]; [k: string]: unknown }
interface Stats { nodes: { id: string; type: string; in: number; out: number; dropped: number; errors: number }[]; errors: { node: string; error: string; deviceId: string }[]; trace: { size: number; nodes: Record<string, { outcome: string; in: { values: unknown }; out?: { values: unknown }; error?: string }[]> } }

const NEW_RULE = { id: 'my-rule', devices: { types: ['room-sensor'] }, nodes: [{ id: 'hot', type: 'filter', if: 'values.temperature > 25' }, { id: 'note', type: 'log', message: 'hot' }] };

/** Rules: list, enable/disable, a JSON editor that shows the server's error, node counters and trace. */
export async function rulesView(root: HTMLElement): Promise<() => void> {
  root.innerHTML = `
    <div style="display:grid;grid-template-columns:minmax(260px,1fr) 2fr;gap:1rem">
      <div class="panel"><div class="toolbar"><b>Rules</b><span style="flex:1"></span><button id="new">New rule</button></div><table><tbody id="list"></tbody></table></div>
      <div>
        <div class="panel"><div class="toolbar"><b id="title">Select a rule</b><span style="flex:1"></span>
          <label class="dim"><input type="checkbox" id="trace"> trace</label><button id="save">Save</button></div>
          <div id="error"></div><textarea id="editor" spellcheck="false"></textarea></div>
        <div class="panel" id="stats"></div>
      </div>
    </div>`;
  const list = root.querySelector<HTMLElement>('#list')!;
  const editor = root.querySelector<HTMLTextAreaElement>('#editor')!;
  const errorEl = root.querySelector<HTMLElement>('#error')!;
  let current: string | undefined;
  let rules: Rule[] = [];

  const loadList = async () => {
    rules = await api<Rule[]>('GET', '/api/rules');
    list.innerHTML = rules.map((r) => `<tr class="clickable" data-id="${esc(r.id)}"><td>${esc(r.id)}<div class="dim">${esc(r.name ?? '')} · ${esc(r.source)}</div></td>
      <td><label><input type="checkbox" data-toggle ${r.enabled === false ? '' : 'checked'}> on</label></td></tr>`).join('');
  };
  const open = (id: string | undefined, doc: unknown) => {
    current = id;
    root.querySelector('#title')!.textContent = id ? `Rule ${id}` : 'New rule';
    const { source: _s, file: _f, ...plain } = doc as Rule;
    editor.value = JSON.stringify(plain, null, 2);
    errorEl.innerHTML = '';
    void loadStats();
  };
  const loadStats = async () => {
    const statsEl = root.querySelector<HTMLElement>('#stats')!;
    if (!current) { statsEl.innerHTML = ''; return; }
    const s = await api<Stats>('GET', `/api/rules/${current}/stats`).catch(() => undefined);
    if (!s) return;
    root.querySelector<HTMLInputElement>('#trace')!.checked = s.trace.size > 0;
    statsEl.innerHTML = `<b>Nodes</b><table><thead><tr><th>Node</th><th>Kind</th><th>In</th><th>Out</th><th>Dropped</th><th>Errors</th><th>Last messages</th></tr></thead><tbody>${
      s.nodes.map((n) => `<tr><td>${esc(n.id)}</td><td>${esc(n.type)}</td><td>${n.in}</td><td>${n.out}</td><td>${n.dropped}</td><td>${n.errors}</td>
        <td class="dim">${(s.trace.nodes[n.id] ?? []).slice(-3).map((t) => `${esc(t.outcome)} ${esc(JSON.stringify(t.in.values))}`).join('<br>')}</td></tr>`).join('')
    }</tbody></table>${s.errors.length > 0 ? `<div class="error">${s.errors.slice(-5).map((e) => `${esc(e.node)}: ${esc(e.error)}`).join('\n')}</div>` : ''}`;
  };
  list.addEventListener('click', async (e) => {
    const tr = (e.target as HTMLElement).closest('tr');
    const id = tr?.dataset.id;
    if (!id) return;
    const rule = rules.find((r) => r.id === id)!;
    if ((e.target as HTMLElement).matches('[data-toggle]')) {
      const { source: _s, file: _f, ...doc } = rule;
      await api('PUT', `/api/rules/${id}`, { ...doc, enabled: (e.target as HTMLInputElement).checked });
      await loadList();
      return;
    }
    open(id, rule);
  });
  root.querySelector('#new')!.addEventListener('click', () => open(undefined, NEW_RULE));
  root.querySelector('#save')!.addEventListener('click', async () => {
    errorEl.innerHTML = '';
    try {
      const saved = current ? await api<Rule>('PUT', `/api/rules/${current}`, editor.value) : await api<Rule>('POST', '/api/rules', editor.value);
      errorEl.innerHTML = `<div class="ok">Saved; running now.</div>`;
      await loadList();
      current = saved.id;
      root.querySelector('#title')!.textContent = `Rule ${saved.id}`;
    } catch (err) {
      const message = (err as Error).message;
      errorEl.innerHTML = `<div class="error" id="rule-error">${esc(message)}</div>`;
      markError(editor, message);
    }
  });
  root.querySelector('#trace')!.addEventListener('change', async (e) => {
    if (current) await api('PUT', `/api/rules/${current}/trace`, { size: (e.target as HTMLInputElement).checked ? 20 : 0 });
  });
  await loadList();
  const timer = setInterval(() => void loadStats(), 2000);
  return () => clearInterval(timer);
}

/**
 * Selects, in the editor, the place the server's error names — `node "f" (nodes[0].if)` selects
 * the `"if"` of that node — so the operator sees where to look.
 */
function markError(editor: HTMLTextAreaElement, message: string): void {
  const path = /\(([^)]+)\):/.exec(message)?.[1];
  const node = /node "([^"]+)"/.exec(message)?.[1];
  const text = editor.value;
  let from = 0;
  if (node) {
    const nodeAt = text.search(new RegExp(`"id"\\s*:\\s*"${node.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"`));
    from = Math.max(0, nodeAt);
  }
  const field = path?.split('.').pop()?.replace(/\[\d+\]$/, '');
  const fieldAt = field ? text.indexOf(`"${field}"`, from) : -1;
  const start = fieldAt >= 0 ? fieldAt : from;
  const lineEnd = text.indexOf('\n', start);
  editor.focus();
  editor.setSelectionRange(start, lineEnd >= 0 ? lineEnd : text.length);
  editor.dataset.errorAt = String(start);
}
