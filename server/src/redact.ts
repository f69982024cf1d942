/**
 * Secrets never go into log lines: a device's access token sits in the device HTTP API's path,
 * and a webhook URL can carry credentials in its user info, query or path (as Slack's do).
 */

const DEVICE_API_PATH = /^(\/api\/v1\/)[^/]+/;

/** `/api/v1/<token>/telemetry` → `/api/v1/<token>/telemetry` with the token replaced by `***`. */
export function redactDevicePath(path: string): string {
  return path.replace(DEVICE_API_PATH, '$1***');
}

/** A URL as logs may show it: scheme, host, port and the first path segment; the rest elided. */
export function redactUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return '(not a URL)';
  }
  const [first, ...rest] = parsed.pathname.split('/').filter((s) => s.length > 0);
  const kept = first === undefined ? '/' : `/${first}${rest.length > 0 ? '/…' : ''}`;
  return `${parsed.protocol}//${parsed.host}${kept}${parsed.search ? '?…' : ''}`;
}

/** `text` (an error message, say: fetch puts the URL in some) with `url` in it redacted. */
export function redactUrlIn(text: string, url: string): string {
  return text.includes(url) ? text.replaceAll(url, redactUrl(url)) : text;
}
