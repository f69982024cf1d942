import { api, esc, token } from './api.js';
import { Live } from './live.js';
import { alarmsView } from './views/alarms.js';
import { deviceView } from './views/device.js';
import { devicesView } from './views/devices.js';
import { pipelineView } from './views/pipeline.js';
import { rulesView } from './views/rules.js';

/** The dashboard: log in with the admin token, then one view per hash route, fed live over socket.io. */
const app = document.querySelector<HTMLElement>('#app')!;

function login(message = ''): void {
  app.innerHTML = `
    <div id="login" class="panel">
      <h1>Sluice</h1>
      <p class="dim">Sign in with the admin token (printed by Sluice at start, and in <code>data/admin-token</code>).</p>
      <form id="login-form"><input id="token" type="password" placeholder="admin token" style="width:100%" autofocus>
      <p><button type="submit">Sign in</button></p></form>
      ${message ? `<div class="error">${esc(message)}</div>` : ''}
    </div>`;
  app.querySelector('#login-form')!.addEventListener('submit', async (e) => {
    e.preventDefault();
    token.set(app.querySelector<HTMLInputElement>('#token')!.value.trim());
    try {
      await api('GET', '/api/log');
      start();
    } catch {
      token.clear();
      login('That token was refused.');
    }
  });
}

function start(): void {
  app.innerHTML = `
    <header><h1>Sluice</h1>
      <nav><a href="#/devices">Devices</a><a href="#/alarms">Alarms</a><a href="#/rules">Rules</a><a href="#/pipeline">Pipeline</a></nav>
      <span id="status">connecting…</span><button class="secondary" id="logout">Sign out</button></header>
    <main id="view"></main>`;
  const status = app.querySelector<HTMLElement>('#status')!;
  const live = new Live((up) => {
    status.className = up ? 'live' : 'down';
    status.textContent = up ? 'live' : 'reconnecting…';
  });
  live.connect();
  app.querySelector('#logout')!.addEventListener('click', () => { token.clear(); location.reload(); });
  let cleanup: (() => void) | undefined;
  let generation = 0;
  const route = async () => {
    cleanup?.();
    cleanup = undefined;
    const gen = ++generation;
    // Each visit renders into a fresh element: a view still loading from the last visit writes
    // into its own, detached element, never into this one.
    const view = document.createElement('div');
    app.querySelector<HTMLElement>('#view')!.replaceChildren(view);
    const hash = location.hash || '#/devices';
    for (const a of app.querySelectorAll('nav a')) a.classList.toggle('active', hash.startsWith(a.getAttribute('href')!));
    view.innerHTML = '<p class="dim">loading…</p>';
    try {
      const device = /^#\/devices\/(.+)$/.exec(hash);
      const stop = device ? await deviceView(view, live, decodeURIComponent(device[1]!))
        : hash.startsWith('#/alarms') ? await alarmsView(view, live)
          : hash.startsWith('#/rules') ? await rulesView(view)
            : hash.startsWith('#/pipeline') ? await pipelineView(view, live)
              : await devicesView(view, live);
      if (gen === generation) cleanup = stop;
      else stop();
    } catch (err) {
      view.innerHTML = `<div class="error">${esc((err as Error).message)}</div>`;
    }
  };
  window.addEventListener('hashchange', () => void route());
  void route();
}

if (token.get()) {
  api('GET', '/api/log').then(start, () => { token.clear(); login(); });
} else {
  login();
}
