// Webhook delivery: one JSON POST per alert, signed with HMAC-SHA256 when a secret is set, retried on
// network errors, timeouts and 5xx; 2xx is success and any other status is final.
import { createHmac } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { Alert, WebhookDelivery, WebhookTarget } from './types.ts';

export const USER_AGENT = 'Breakwater-Alerts/1';
export const SIGNATURE_HEADER = 'X-Breakwater-Signature';

export interface WebhookPayload {
  id: number;
  at: string;
  class: Alert['class'];
  severity: Alert['severity'];
  key: string;
  title: string;
  text: string;
  data: Record<string, unknown>;
  host: string;
}

export function webhookPayload(alert: Alert, host: string): WebhookPayload {
  return {
    id: alert.id,
    at: new Date(alert.at).toISOString(),
    class: alert.class,
    severity: alert.severity,
    key: alert.key,
    title: alert.title,
    text: alert.text,
    data: alert.data ?? {},
    host,
  };
}

/** `sha256=<hex>`: what a receiver recomputes over the raw request body with the shared secret. */
export function signature(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** The URL as it may be recorded and shown: no user info, no query (either may carry a token). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    const query = u.search ? '?…' : '';
    return `${u.protocol}//${u.host}${u.pathname}${query}`;
  } catch {
    return '(invalid URL)';
  }
}

export interface DeliverOptions {
  fetchImpl: typeof fetch;
  timeout: number;
  retryDelays: number[];
  /** aborts the delivery (shutdown) */
  signal: AbortSignal;
}

function describeError(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  const cause = e?.cause?.code ?? e?.cause?.message;
  return (cause ? `${e.message}: ${cause}` : String(e?.message ?? err)).slice(0, 200);
}

/** Delivers one alert to one webhook. Never throws. */
export async function deliverWebhook(
  target: WebhookTarget,
  body: string,
  opts: DeliverOptions,
): Promise<WebhookDelivery> {
  const url = redactUrl(target.url);
  if (!/^https?:$/.test(URL.parse(target.url)?.protocol ?? ''))
    return { url, status: 'failed', error: 'not an http(s) URL' };
  const headers: Record<string, string> = { 'Content-Type': 'application/json', 'User-Agent': USER_AGENT };
  if (target.secret) headers[SIGNATURE_HEADER] = signature(target.secret, body);
  let last: WebhookDelivery = { url, status: 'failed', error: 'not attempted' };
  for (let attempt = 0; attempt <= opts.retryDelays.length; attempt++) {
    if (attempt > 0) {
      try {
        await delay(opts.retryDelays[attempt - 1], undefined, { signal: opts.signal });
      } catch {
        break;
      }
    }
    if (opts.signal.aborted) break;
    const timeout = AbortSignal.timeout(opts.timeout);
    try {
      const res = await opts.fetchImpl(target.url, {
        method: 'POST',
        headers,
        body,
        // a redirect would re-send the signed body somewhere else (or turn the POST into a GET)
        redirect: 'manual',
        signal: AbortSignal.any([timeout, opts.signal]),
      });
      await res.body?.cancel().catch(() => undefined);
      if (res.status >= 200 && res.status < 300) return { url, status: 'sent', httpStatus: res.status };
      last = { url, status: 'failed', httpStatus: res.status, error: `HTTP ${res.status}` };
      if (res.status < 500) return last;
    } catch (err) {
      if (opts.signal.aborted) return { url, status: 'failed', error: 'aborted at shutdown' };
      last = {
        url,
        status: 'failed',
        error: timeout.aborted ? `timed out after ${opts.timeout} ms` : describeError(err),
      };
    }
  }
  if (opts.signal.aborted) return { url, status: 'failed', error: 'aborted at shutdown' };
  return last;
}
