// The web UI on the admin port (DESIGN §9, issue 13): the React app built into dist/web (web/, `npm
// install` builds it), served under /ui/ with a strict same-origin content security policy; `/` leads
// there. The app calls the same admin API as the CLI, with the session cookie; the API enforces roles.
import { existsSync } from 'node:fs';
import path from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

export const WEB_DIR = path.resolve(import.meta.dirname, '../../dist/web');

/**
 * Scripts, styles, images and API calls from this host only; no plugins, no framing, no inline script.
 * Inline style attributes are allowed (React and the charts set them); they cannot run code.
 */
export const UI_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

export async function registerWebUi(app: FastifyInstance, dir = WEB_DIR): Promise<{ built: boolean }> {
  app.get('/', { schema: { hide: true } }, (_req, reply) => reply.redirect('/ui/'));
  const built = existsSync(path.join(dir, 'index.html'));
  if (!built) {
    app.get('/ui/*', { schema: { hide: true } }, (_req, reply) =>
      reply
        .code(503)
        .type('text/plain; charset=utf-8')
        .send('The web UI is not built: run `npm run build:web` (npm install does it), then reload.\n'),
    );
    return { built };
  }
  await app.register(fastifyStatic, {
    root: dir,
    prefix: '/ui/',
    index: 'index.html',
    decorateReply: false,
    // hashed asset names never change; the page itself is checked every time
    setHeaders: (res, file) => {
      res.header('content-security-policy', UI_CSP);
      res.header('x-content-type-options', 'nosniff');
      res.header('referrer-policy', 'no-referrer');
      res.header(
        'cache-control',
        file.includes(`${path.sep}assets${path.sep}`) ? 'public, max-age=31536000, immutable' : 'no-cache',
      );
    },
  });
  return { built };
}
