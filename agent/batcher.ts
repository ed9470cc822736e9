/**
 * Collects items and hands them to `flush` once per turn of the event loop, one flush at a time
 * and in order: a burst (a relist, a storm of label changes) becomes one batch, so one compile and
 * one set of map writes. Other work that must not interleave with a flush goes through `run`.
 */
export class TurnBatcher<T> {
  private pending: T[] = [];
  private queued = false;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly flush: (batch: T[]) => Promise<void>,
    private readonly onError: (err: unknown) => void,
  ) {}

  push(item: T): void {
    this.pending.push(item);
    if (this.queued) return;
    this.queued = true;
    setImmediate(() => {
      this.queued = false;
      const batch = this.pending;
      this.pending = [];
      this.run(() => this.flush(batch));
    });
  }

  /** Runs `task` after every flush and task queued so far; its error goes to `onError`. */
  run(task: () => Promise<void>): void {
    this.chain = this.chain.then(task).catch(this.onError);
  }

  /** Resolves once every item pushed so far went through `flush`. */
  async drain(): Promise<void> {
    while (this.pending.length > 0 || this.queued) {
      await new Promise((r) => setImmediate(r));
      await this.chain;
    }
    await this.chain;
  }
}
