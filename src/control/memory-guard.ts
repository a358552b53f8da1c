/**
 * Samples the process's resident memory and flips a flag when it crosses max-memory,
 * so publishers are refused (503) before the kernel's OOM killer decides for us.
 * Sampling, not per-message checks: memoryUsage.rss() is a syscall.
 */
const SAMPLE_MS = 250;
/** Publishing resumes only once memory falls this far below the mark, so it does not flap. */
const HYSTERESIS = 0.9;

export class MemoryGuard {
  readonly #limit: number;
  readonly #onChange: (over: boolean, rss: number) => void;
  #timer: NodeJS.Timeout | null = null;
  #over = false;

  /** @param limit bytes; 0 turns the guard off */
  constructor(limit: number, onChange: (over: boolean, rss: number) => void) {
    this.#limit = limit;
    this.#onChange = onChange;
  }

  get over(): boolean {
    return this.#over;
  }

  start(): void {
    if (this.#limit === 0 || this.#timer !== null) return;
    this.#timer = setInterval(() => this.check(process.memoryUsage.rss()), SAMPLE_MS);
    this.#timer.unref();
  }

  /** One sample (exposed for tests). */
  check(rss: number): void {
    const over = this.#over ? rss > this.#limit * HYSTERESIS : rss > this.#limit;
    if (over !== this.#over) {
      this.#over = over;
      this.#onChange(over, rss);
    }
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}
