// Sorts a failed write into permanent (retrying the same row can never succeed: a data or
// constraint error) and transient (the database is unreachable, restarting or overloaded: try
// again). node-postgres and PGlite both put the SQLSTATE in `code`; drizzle may wrap the
// driver's error in `cause`, and node's socket errors carry their errno name in `code`.

// SQLSTATE classes 22 (data exception: bad encoding, value too long, invalid text) and 23
// (integrity constraint violation) describe the row itself. Everything else (a lost connection,
// a server restarting (57P01), a pool timeout, even a schema problem of class 42 or an error
// without a code) is not the row's fault: it is retried, never discarded.
const PERMANENT_CLASSES = new Set(['22', '23']);

export type StorageFailure = { permanent: boolean; code: string | undefined };

export function classifyStorageError(error: unknown): StorageFailure {
  const code = sqlState(error);
  return { permanent: code !== undefined && PERMANENT_CLASSES.has(code.slice(0, 2)), code };
}

/** The first five-character SQLSTATE along the `cause` chain. */
function sqlState(error: unknown): string | undefined {
  const seen = new Set<unknown>();
  for (let e = error; typeof e === 'object' && e !== null && !seen.has(e); e = (e as { cause?: unknown }).cause) {
    seen.add(e);
    const code = Object.hasOwn(e, 'code') ? (e as { code: unknown }).code : undefined;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

/** Words for a client: the SQLSTATE at most, never the driver's message (it can quote SQL or values). */
export function describeStorageFailure(failure: StorageFailure): string {
  if (failure.permanent) return `the database refused it as invalid (SQLSTATE ${failure.code})`;
  return failure.code ? `the database could not take it now (SQLSTATE ${failure.code})` : 'the database is unreachable';
}
