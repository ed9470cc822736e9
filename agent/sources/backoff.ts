/** Exponential backoff with full jitter, reset after a stretch of healthy running. */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** A run at least this long without failing resets the delay to initialMs. */
  resetAfterMs: number;
  random?: () => number;
  now?: () => number;
}

export class Backoff {
  private attempt = 0;
  private startedAt: number;
  private readonly random: () => number;
  private readonly now: () => number;

  constructor(private readonly opts: BackoffOptions) {
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? Date.now;
    this.startedAt = this.now();
  }

  /** Marks the start of a run (a connection attempt). */
  started(): void {
    this.startedAt = this.now();
  }

  /** The delay before the next attempt after a failure. */
  next(): number {
    if (this.now() - this.startedAt >= this.opts.resetAfterMs) this.attempt = 0;
    const cap = Math.min(this.opts.maxMs, this.opts.initialMs * 2 ** this.attempt);
    this.attempt += 1;
    return Math.round(cap / 2 + (this.random() * cap) / 2);
  }
}
