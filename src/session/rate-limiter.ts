// Per-connection rate limits: token buckets for turns (user_message) and for every other
// request (CRUD, settings, history, previews). A client may burst up to the limit, then gets
// one request back every window/limit ms. Over the limit a request is answered `rate_limited`
// with the wait, and the connection stays usable. ping, interrupt (with the playback_position
// before it) and the listening switches are never limited: they are cheap, and an interrupt
// must always work. regenerate and continue start an LLM reply, so they count as turns.

export interface RateLimits {
  windowMs: number;
  /** user_message requests per window (RATE_LIMIT_TURNS). */
  turns: number;
  /** Other requests per window (RATE_LIMIT_REQUESTS). */
  requests: number;
}

/** What a limited request is told. */
export interface Limited {
  retryAfterMs: number;
  message: string;
}

/** `capacity` tokens, refilled continuously at capacity per `windowMs`. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly capacity: number,
    private readonly windowMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = capacity;
    this.last = now();
  }

  /** Takes a token: 0 when one was there, else the milliseconds until one will be. */
  take(): number {
    const now = this.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) * this.capacity) / this.windowMs);
    this.last = now;
    // The epsilon: after waiting exactly the wait it said, a client must find a token.
    if (this.tokens >= 1 - 1e-9) {
      this.tokens = Math.max(0, this.tokens - 1);
      return 0;
    }
    return Math.max(1, Math.ceil(((1 - this.tokens) * this.windowMs) / this.capacity));
  }
}

const UNLIMITED = new Set(['ping', 'interrupt', 'start_listening', 'stop_listening', 'playback_position']);
/** Requests that start a turn (an LLM reply). */
const TURN_TYPES = new Set(['user_message', 'trigger_character', 'regenerate', 'continue']);

export class RequestLimiter {
  private readonly turns: TokenBucket;
  private readonly requests: TokenBucket;

  constructor(private readonly limits: RateLimits) {
    this.turns = new TokenBucket(limits.turns, limits.windowMs);
    this.requests = new TokenBucket(limits.requests, limits.windowMs);
  }

  /** Takes a token for a request of `type`: undefined when it may run, else why not and how long to wait. */
  check(type: string): Limited | undefined {
    if (UNLIMITED.has(type)) return undefined;
    const turn = TURN_TYPES.has(type);
    const retryAfterMs = (turn ? this.turns : this.requests).take();
    if (retryAfterMs === 0) return undefined;
    const { windowMs } = this.limits;
    const what = turn ? `${this.limits.turns} messages (RATE_LIMIT_TURNS)` : `${this.limits.requests} requests (RATE_LIMIT_REQUESTS)`;
    return { retryAfterMs, message: `Too many requests: at most ${what} per ${windowMs} ms (RATE_LIMIT_WINDOW_MS). Try again in ${retryAfterMs} ms.` };
  }
}
