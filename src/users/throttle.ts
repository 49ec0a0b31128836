// Failed logins per client address: past MAX_FAILURES within WINDOW_MS the address is refused until
// the window has passed (429 too_many_attempts). Together with the per-account lockout this bounds
// password guessing both against one account and across many. In memory: a restart forgets it.
const WINDOW_MS = 10 * 60_000;
const MAX_FAILURES = 20;
const MAX_ADDRESSES = 10_000;

export class LoginThrottle {
  private readonly failures = new Map<string, number[]>();

  /** How long the address must wait (ms); 0 when it may try. */
  blocked(ip: string, now = Date.now()): number {
    const list = this.recent(ip, now);
    return list.length >= MAX_FAILURES ? list[0] + WINDOW_MS - now : 0;
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
    return (this.failures.get(ip) ?? []).filter((t) => now - t < WINDOW_MS);
  }
}
