// The embedded database's own process: opens PGlite in DATA_DIR (the migrations run here,
// once, before anyone connects) and serves it over the PostgreSQL protocol on a unix socket
// (src/db/pglite-server.ts), so no Chorus server thread ever runs the WASM database. Started
// by src/db/embedded-host.ts with an IPC channel; it says `ready` there, and it closes the
// database (flushing it to disk) on SIGTERM, on `close`, or when its parent goes away.
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { openPglite } from './client.ts';
import { PgliteServer } from './pglite-server.ts';

export interface HostRequest {
  dataDir: string;
  /** The unix socket to listen on. */
  socketPath: string;
}

export type HostMessage = { type: 'ready' } | { type: 'failed'; error: string };

async function serve(request: HostRequest): Promise<void> {
  const database = await openPglite(request.dataDir);
  // A process before this one that was killed left its socket file behind (the directory is ours alone).
  await rm(request.socketPath, { force: true });
  const server = new PgliteServer({ db: database.client, path: request.socketPath });
  await server.start();
  let closing: Promise<void> | undefined;
  const close = (orphaned = false) =>
    (closing ??= (async () => {
      await server.stop();
      await database.close();
      // A parent that is gone (killed) will not remove the socket's private directory: this does.
      if (orphaned) await rm(dirname(request.socketPath), { recursive: true, force: true });
      process.exit(0);
    })());
  process.on('SIGTERM', () => void close());
  process.on('SIGINT', () => {}); // a terminal's ^C reaches the whole group: the parent says when
  process.on('disconnect', () => void close(true));
  process.on('message', (message) => {
    if (message === 'close') void close();
  });
  process.send?.({ type: 'ready' } satisfies HostMessage);
}

const request = JSON.parse(process.env.CHORUS_EMBEDDED_HOST ?? 'null') as HostRequest | null;
if (!request || !process.send) {
  console.error('embedded-host-process.ts is started by src/db/embedded-host.ts');
  process.exit(2);
}
serve(request).catch((error: unknown) => {
  process.send?.({ type: 'failed', error: error instanceof Error ? error.message : String(error) } satisfies HostMessage);
  process.exit(1);
});
