import path from 'node:path';
import express, { type RequestHandler, type Router } from 'express';

/**
 * What the browser gets from the dashboard folder: the page, its icon and the built bundle —
 * not the TypeScript source, the build script or source maps, which are for developers.
 */
export function dashboardFiles(dashboardDir: string): Router {
  const router = express.Router();
  const page = path.join(dashboardDir, 'index.html');
  const icon = path.join(dashboardDir, 'favicon.svg');
  router.get('/', (_req, res) => res.sendFile(page));
  router.get('/index.html', (_req, res) => res.sendFile(page));
  router.get('/favicon.svg', (_req, res) => res.sendFile(icon));
  // Browsers ask for /favicon.ico whatever the page links; the dashboard's icon is an SVG.
  router.get('/favicon.ico', (_req, res) => res.type('image/svg+xml').sendFile(icon));
  router.use('/dist', (req, res, next) => (req.path.endsWith('.map') ? res.status(404).end() : next()));
  router.use('/dist', express.static(path.join(dashboardDir, 'dist'), { index: false }));
  return router;
}

/**
 * Headers for every answer: the page may run only its own scripts (no inline script, no eval),
 * connect only to its own origin (REST and socket.io), and never be framed; no response is
 * sniffed into another type. Inline styles stay allowed: the views set layout in style attributes.
 */
export function securityHeaders(): RequestHandler {
  const policy = [
    "default-src 'self'", "script-src 'self'", "style-src 'self' 'unsafe-inline'", "img-src 'self' data:",
    "connect-src 'self'", "object-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
  ].join('; ');
  return (_req, res, next) => {
    res.setHeader('Content-Security-Policy', policy);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Referrer-Policy', 'no-referrer');
    next();
  };
}
