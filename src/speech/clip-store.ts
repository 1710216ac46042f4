// ClipStore: voices' reference clips under DATA_DIR/voices, one normalized mono PCM16 WAV and
// one transcript file per clip, named by the hash of the clip's content (so the same clip stored
// twice is one file, and an engine can key what it caches on the name). The voices table keeps
// the names (audio_path, text_path); a clip is read once per process and kept in memory.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { ReferenceClip } from './engine.ts';

/** Stored names are hashes: nothing else is ever read (no path from the database reaches the file system). */
const CLIP_NAME = /^[0-9a-f]{64}\.(wav|txt)$/;

/** Unreferenced files younger than this are kept (see prune()). */
const PRUNE_AFTER_MS = 60_000;

export class ClipStore {
  private readonly dir: string;
  private readonly cache = new Map<string, Promise<ReferenceClip>>();

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'voices');
  }

  /** Stores a clip and its transcript; returns the names for audio_path and text_path. */
  async save(wav: Buffer, transcript: string): Promise<{ audio_path: string; text_path: string }> {
    const id = createHash('sha256').update(wav).digest('hex');
    const textId = createHash('sha256').update(transcript, 'utf8').digest('hex');
    await mkdir(this.dir, { recursive: true });
    await writeFile(join(this.dir, `${id}.wav`), wav);
    await writeFile(join(this.dir, `${textId}.txt`), transcript, 'utf8');
    return { audio_path: `${id}.wav`, text_path: `${textId}.txt` };
  }

  /** The clip named by a voice's audio_path and text_path. */
  load(audioPath: string, textPath: string): Promise<ReferenceClip> {
    const key = `${audioPath}|${textPath}`;
    let found = this.cache.get(key);
    if (!found) {
      found = this.read(audioPath, textPath);
      found.catch(() => this.cache.delete(key));
      this.cache.set(key, found);
    }
    return found;
  }

  /** Removes the stored files that none of `inUse` names (after a voice was deleted or its clip replaced). */
  async prune(inUse: ReadonlyArray<string | null>): Promise<void> {
    const keep = new Set(inUse);
    const names = await readdir(this.dir).catch(() => [] as string[]);
    for (const name of names) {
      if (!CLIP_NAME.test(name) || keep.has(name)) continue;
      // A clip just stored may not be in its voice's row yet (the upload's update is on its way).
      const { mtimeMs } = await stat(join(this.dir, name)).catch(() => ({ mtimeMs: Date.now() }));
      if (Date.now() - mtimeMs < PRUNE_AFTER_MS) continue;
      for (const key of this.cache.keys()) if (key.split('|').includes(name)) this.cache.delete(key);
      await rm(join(this.dir, name), { force: true });
    }
  }

  private async read(audioPath: string, textPath: string): Promise<ReferenceClip> {
    for (const name of [audioPath, textPath]) {
      if (!CLIP_NAME.test(basename(name)) || basename(name) !== name) throw new Error(`"${name}" is not a stored reference clip`);
    }
    const [wav, transcript] = await Promise.all([readFile(join(this.dir, audioPath)), readFile(join(this.dir, textPath), 'utf8')]);
    return { wav, transcript, id: audioPath.slice(0, 64) };
  }
}
