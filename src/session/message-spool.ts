// The files in DATA_DIR that keep messages the database has not taken, as JSON Lines:
//   spool.jsonl        messages still unstored at shutdown; replayed (stored) at the next start
//   dead-letter.jsonl  messages the database refused for good (a data or constraint error), with
//                      the reason, set aside for a person to look at: never silently discarded
// Both are appended to one line per message, so nothing already written is rewritten.
import { appendFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Repo } from '../db/repo.ts';
import { classifyStorageError } from '../db/storage-errors.ts';
import { type LogEntry, storeEntry } from './conversation-log.ts';

export const SPOOL_FILE = 'spool.jsonl';
export const DEAD_LETTER_FILE = 'dead-letter.jsonl';

export interface DeadLetter extends LogEntry {
  reason: string;
  failed_at: string;
}

export class MessageSpool {
  /** Appends run one after another, so lines never interleave. */
  private writes: Promise<unknown> = Promise.resolve();

  constructor(readonly dir: string) {}

  get spoolPath(): string {
    return join(this.dir, SPOOL_FILE);
  }

  get deadLetterPath(): string {
    return join(this.dir, DEAD_LETTER_FILE);
  }

  /** Sets a refused message aside with the reason it was refused. */
  deadLetter(entry: LogEntry, reason: string): Promise<void> {
    const line: DeadLetter = { ...entry, reason, failed_at: new Date().toISOString() };
    return this.append(this.deadLetterPath, [line]);
  }

  /** Keeps unstored messages for the next start. */
  spool(entries: LogEntry[]): Promise<void> {
    return entries.length === 0 ? Promise.resolve() : this.append(this.spoolPath, entries);
  }

  /**
   * Stores every spooled message in order (creating its conversation when missing), then
   * removes the spool. A message the database refuses goes to the dead-letter file; one it
   * cannot take now (still unreachable) stays in the spool for the next start.
   */
  async replay(repo: Repo, logger: Logger): Promise<{ stored: number; deadLettered: number; kept: number }> {
    const entries = await this.readSpool(logger);
    if (entries.length === 0) return { stored: 0, deadLettered: 0, kept: 0 };
    const kept: LogEntry[] = [];
    let stored = 0;
    let deadLettered = 0;
    for (const entry of entries) {
      if (kept.length > 0) {
        kept.push(entry); // the database is down: keep the rest, in order
        continue;
      }
      try {
        await storeEntry(repo, entry);
        stored++;
      } catch (error) {
        const failure = classifyStorageError(error);
        if (!failure.permanent) kept.push(entry);
        else {
          await this.deadLetter(entry, `${failure.code}: ${error instanceof Error ? error.message : String(error)}`);
          deadLettered++;
        }
      }
    }
    await this.replaceSpool(kept);
    return { stored, deadLettered, kept: kept.length };
  }

  private async readSpool(logger: Logger): Promise<LogEntry[]> {
    let text: string;
    try {
      text = await readFile(this.spoolPath, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const entries: LogEntry[] = [];
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      try {
        entries.push(JSON.parse(line) as LogEntry);
      } catch {
        // A line cut short by a crash mid-append: the rest of the file is still good.
        logger.error({ file: this.spoolPath }, 'skipped an unreadable line of the message spool');
      }
    }
    return entries;
  }

  /** What is left replaces the spool in one rename, so a crash leaves the old file or the new one. */
  private async replaceSpool(entries: LogEntry[]): Promise<void> {
    await this.queued(async () => {
      if (entries.length === 0) return rm(this.spoolPath, { force: true });
      const next = `${this.spoolPath}.tmp`;
      await writeFile(next, toLines(entries));
      await rename(next, this.spoolPath);
    });
  }

  private append(path: string, lines: object[]): Promise<void> {
    return this.queued(async () => {
      await mkdir(this.dir, { recursive: true });
      await appendFile(path, toLines(lines));
    });
  }

  private queued(write: () => Promise<unknown>): Promise<void> {
    const done = this.writes.then(write);
    this.writes = done.catch(() => undefined);
    return done.then(() => undefined);
  }
}

const toLines = (lines: object[]) => lines.map((line) => `${JSON.stringify(line)}\n`).join('');
