// Session-level advisory locks (pg_advisory_lock, pg_try_advisory_lock, pg_advisory_unlock,
// pg_advisory_unlock_all) for the embedded database's connections. PGlite is one backend, so
// on it a lock taken by one connection would be granted to every other as well (they are all
// one session); src/db/pglite-server.ts answers these calls itself, from this table, so each
// connection is a session of its own as on a PostgreSQL server: a lock is held by one
// connection at a time (re-entrant for it), pg_advisory_lock waits for it, and a connection's
// locks are released when it goes away. Only a statement that is exactly one such call, with
// integer literals or $n parameters, is answered here; anything else reaches the backend, and
// transaction-level locks (pg_advisory_xact_lock) are exclusive there anyway (transactions
// take turns on the one backend).

export type AdvisoryFunction = 'pg_advisory_lock' | 'pg_try_advisory_lock' | 'pg_advisory_unlock' | 'pg_advisory_unlock_all';

export interface AdvisoryCall {
  fn: AdvisoryFunction;
  /** Each argument: an integer literal, or `$n` (a parameter of the Bind). */
  args: string[];
  /** The result column's name (the function's, or the alias). */
  column: string;
}

const CALL = /^\s*select\s+(pg_advisory_lock|pg_try_advisory_lock|pg_advisory_unlock|pg_advisory_unlock_all)\s*\(([^()]*)\)\s*(?:as\s+("?)([a-z_][a-z0-9_]*)\3)?\s*;?\s*$/i;
const ARG = /^(\$[1-9][0-9]*|-?[0-9]+)(?:\s*::\s*(?:int|int4|int8|bigint|integer))?$/i;
const ARITY: Record<AdvisoryFunction, number[]> = {
  pg_advisory_lock: [1, 2],
  pg_try_advisory_lock: [1, 2],
  pg_advisory_unlock: [1, 2],
  pg_advisory_unlock_all: [0],
};

/** The call a statement is, when it is exactly one session-level advisory lock call. */
export function advisoryCall(text: string): AdvisoryCall | undefined {
  const match = CALL.exec(text);
  if (!match) return undefined;
  const fn = match[1]!.toLowerCase() as AdvisoryFunction;
  const inside = match[2]!.trim();
  const args = inside === '' ? [] : inside.split(',').map((a) => a.trim());
  if (!ARITY[fn].includes(args.length) || !args.every((a) => ARG.test(a))) return undefined;
  const column = match[4] === undefined ? fn : match[3] === '"' ? match[4] : match[4].toLowerCase();
  return { fn, args: args.map((a) => ARG.exec(a)![1]!), column };
}

/** The lock key of a call's argument values (one bigint, or two ints: separate key spaces, as in PostgreSQL). */
export function lockKey(values: readonly string[]): string {
  return `${values.length}:${values.map((v) => BigInt(v).toString()).join(',')}`;
}

export class AdvisoryLocks {
  private readonly held = new Map<string, { owner: object; count: number }>();
  private readonly waiting = new Map<string, Array<{ who: object; grant: () => void }>>();

  tryLock(key: string, who: object): boolean {
    const lock = this.held.get(key);
    if (lock && lock.owner !== who) return false;
    if (lock) lock.count++;
    else this.held.set(key, { owner: who, count: 1 });
    return true;
  }

  /** Waits its turn, first come first served, like pg_advisory_lock. */
  async lock(key: string, who: object): Promise<void> {
    if (this.tryLock(key, who)) return;
    await new Promise<void>((grant) => {
      const queue = this.waiting.get(key) ?? [];
      queue.push({ who, grant });
      this.waiting.set(key, queue);
    });
  }

  unlock(key: string, who: object): boolean {
    const lock = this.held.get(key);
    if (!lock || lock.owner !== who) return false;
    if (--lock.count === 0) this.handOver(key);
    return true;
  }

  /** Everything `who` holds or waits for (pg_advisory_unlock_all, or the connection is gone). */
  releaseAll(who: object): void {
    for (const [key, queue] of this.waiting) {
      const rest = queue.filter((w) => w.who !== who);
      if (rest.length > 0) this.waiting.set(key, rest);
      else this.waiting.delete(key);
    }
    for (const [key, lock] of [...this.held]) if (lock.owner === who) this.handOver(key);
  }

  private handOver(key: string): void {
    this.held.delete(key);
    const queue = this.waiting.get(key);
    const next = queue?.shift();
    if (queue && queue.length === 0) this.waiting.delete(key);
    if (!next) return;
    this.held.set(key, { owner: next.who, count: 1 });
    next.grant();
  }
}
