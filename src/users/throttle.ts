// Failed logins per client address: past `max` failures within `windowMs` the address is refused until
// the window has passed (429 too_many_attempts). Together with the per-account lockout this bounds
// password guessing both against one account and across many. The same count bounds other requests a
// client may not repeat at will (sign-in links mailed on request: every request counts). In memory: a
// restart forgets it.
const MAX_ADDRESSES = 10_000;

export class LoginThrottle {
  private readonly failures = new Map<string, number[]>();
  private readonly windowMs: number;
  private readonly max: number;

  constructor(opts: { windowMs?: number; max?: number } = {}) {
    this.windowMs = opts.windowMs ?? 10 * 60_000;
    this.max = opts.max ?? 20;
  }

  /** How long the address must wait (ms); 0 when it may try. */
  blocked(ip: string, now = Date.now()): number {
    const list = this.recent(ip, now);
    return list.length >= this.max ? list[0] + this.windowMs - now : 0;
  }

  failed(ip: string, now = Date.now()): void {
    const list = this.recent(ip, now);
    list.push(now);
    this.failures.set(ip, list);
    if (this.failures.size > MAX_ADDRESSES) this.failures.delete(this.failures.keys().next().value!);
  }

  succeeded(ip: string): void {
    this.failures.delete(ip);
  }

  private recent(ip: string, now: number): number[] {
    return (this.failures.get(ip) ?? []).filter((t) => now - t < this.windowMs);
  }
}
