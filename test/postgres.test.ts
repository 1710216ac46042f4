// Against the PostgreSQL server (TEST_DATABASE_URL): the server dropping Chorus's connections
// (a restart, a terminated backend) must not end the process; the next query reconnects.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { openDatabase } from '../src/db/client.ts';
import { Repo } from '../src/db/repo.ts';

const url = process.env.TEST_DATABASE_URL;

test('connections the server terminates are replaced, not fatal', { skip: url ? false : 'TEST_DATABASE_URL is not set' }, async () => {
  const database = await openDatabase({ databaseUrl: url! });
  try {
    const repo = new Repo(database);
    await Promise.all([repo.listCharacters(), repo.listVoices()]); // two pooled connections, now idle
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    const { rows } = await admin.query<{ n: string }>(
      `select count(pg_terminate_backend(pid)) as n from pg_stat_activity
        where datname = current_database() and pid <> pg_backend_pid() and application_name = ''`,
    );
    await admin.end();
    assert.ok(Number(rows[0]?.n) >= 1, 'some of the pool connections were terminated');
    // The pool's idle clients error as the server drops them; without a handler the process
    // would crash. The next queries get new connections and see the data.
    const created = await repo.createCharacter({ name: `Reconnect ${process.pid}` });
    assert.equal((await repo.getCharacter(created.id))?.name, created.name, 'queries work on new connections');
    await repo.deleteCharacter(created.id);
  } finally {
    await database.close();
  }
});
