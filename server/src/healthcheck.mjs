// The container's health check (Dockerfile HEALTHCHECK, docker-compose.yml): exit 0 when GET
// /healthz answers 200 on the port this Sluice listens on. That port is the one in the data dir's
// ports.json (written at every start), else HTTP_PORT, else 8080; the address is HOST unless it
// is a wildcard.
import fs from 'node:fs';
import path from 'node:path';

const dataDir = process.env.DATA_DIR || './data';
let port = process.env.HTTP_PORT || '8080';
try {
  port = String(JSON.parse(fs.readFileSync(path.join(dataDir, 'ports.json'), 'utf8')).http ?? port);
} catch {
  // not started yet, or an older data dir: the configured port
}
const host = !process.env.HOST || process.env.HOST === '0.0.0.0' || process.env.HOST === '::' ? '127.0.0.1' : process.env.HOST;
const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}/healthz`;
fetch(url, { signal: AbortSignal.timeout(4000) }).then(
  (res) => process.exit(res.ok ? 0 : 1),
  (err) => { process.stderr.write(`healthcheck: ${url}: ${err.message}\n`); process.exit(1); },
);
