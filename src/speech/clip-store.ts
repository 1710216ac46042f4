// ClipStore: voices' reference clips under DATA_DIR/voices, one normalized mono PCM16 WAV (at its
// voice's engine's rate) and one transcript file per clip, named by the hash of the content (so
// the same clip stored twice is one file, and an engine can key what it caches on the name). The
// voices table keeps the names (audio_path, text_path); a clip is read once per process and kept
// in memory, converted once to another engine's rate if the voice's engine changed since.
// Files no voice names are removed by sweep(): at start-up (what a crash or an older version
// left) and after every voice change (a voice deleted, or given a new clip). A clip saved but not
// yet named by its voice's row is known only to the process that saved it, so where several
// processes share DATA_DIR (WORKERS > 1) a sweep spares files younger than `graceMs`.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { encodeWav } from '../transcribe/wav.ts';
import type { ReferenceClip } from './engine.ts';
import { resampleAll, toFloat, toPcm16 } from './resampler.ts';
import { wavHeader } from './wav-pcm.ts';

/** Stored names are hashes: nothing else is ever read (no path from the database reaches the file system). */
const CLIP_NAME = /^[0-9a-f]{64}\.(wav|txt)$/;

export interface StoredClip {
  audio_path: string;
  text_path: string;
}

export class ClipStore {
  private readonly dir: string;
  private readonly cache = new Map<string, Promise<ReferenceClip>>();
  /** Names saved and not yet released (their voice's row is being updated): never swept. */
  private readonly pending = new Map<string, number>();
  /** Counts saves, so a sweep spares what was saved after it started (its voice list may predate it). */
  private saves = 0;
  private readonly savedAt = new Map<string, number>();
  private sweeping: Promise<void> = Promise.resolve();

  constructor(
    dataDir: string,
    /** Files this young are never swept: another process sharing the directory may be about to name them. */
    private readonly graceMs = 0,
  ) {
    this.dir = join(dataDir, 'voices');
  }

  /** Stores a clip and its transcript; kept from sweeps until release() (once its voice names it, or failed to). */
  async save(wav: Buffer, transcript: string): Promise<StoredClip> {
    const id = createHash('sha256').update(wav).digest('hex');
    const textId = createHash('sha256').update(transcript, 'utf8').digest('hex');
    const stored = { audio_path: `${id}.wav`, text_path: `${textId}.txt` };
    for (const name of [stored.audio_path, stored.text_path]) {
      this.pending.set(name, (this.pending.get(name) ?? 0) + 1);
      this.savedAt.set(name, ++this.saves);
    }
    await mkdir(this.dir, { recursive: true });
    await writeFile(join(this.dir, stored.audio_path), wav);
    await writeFile(join(this.dir, stored.text_path), transcript, 'utf8');
    return stored;
  }

  /** The clip's voice now names it (or never will): sweeps may judge it by the voices table again. */
  release(stored: StoredClip): void {
    for (const name of [stored.audio_path, stored.text_path]) {
      const count = (this.pending.get(name) ?? 1) - 1;
      if (count > 0) this.pending.set(name, count);
      else this.pending.delete(name);
    }
  }

  /** The clip named by a voice's audio_path and text_path, as mono PCM16 WAV at `rate` (default: as stored). */
  load(audioPath: string, textPath: string, rate?: number): Promise<ReferenceClip> {
    const key = `${audioPath}|${textPath}|${rate ?? ''}`;
    let found = this.cache.get(key);
    if (!found) {
      found = this.read(audioPath, textPath, rate);
      found.catch(() => this.cache.delete(key));
      this.cache.set(key, found);
    }
    return found;
  }

  /** What the voice editor shows of a stored clip: its transcript, length and rate. */
  async describe(audioPath: string, textPath: string): Promise<{ transcript: string; seconds: number; sample_rate: number }> {
    const clip = await this.load(audioPath, textPath);
    const header = wavHeader(clip.wav);
    if (!header) throw new Error(`"${audioPath}" is not a complete WAV file`);
    const seconds = (clip.wav.length - header.dataOffset) / 2 / header.sampleRate;
    return { transcript: clip.transcript, seconds: Number(seconds.toFixed(3)), sample_rate: header.sampleRate };
  }

  /**
   * Removes the stored files no voice names (`voices()` lists the voices table). Sweeps run one
   * at a time; a file saved since the sweep started, or not yet released, is kept.
   */
  sweep(voices: () => Promise<ReadonlyArray<{ audio_path: string | null; text_path: string | null }>>): Promise<void> {
    const run = this.sweeping.then(() => this.sweepNow(voices));
    this.sweeping = run.catch(() => undefined);
    return run;
  }

  private async sweepNow(voices: () => Promise<ReadonlyArray<{ audio_path: string | null; text_path: string | null }>>): Promise<void> {
    const startedAt = this.saves;
    const pendingAtStart = new Set(this.pending.keys());
    const inUse = new Set((await voices()).flatMap((v) => [v.audio_path, v.text_path]));
    const names = await readdir(this.dir).catch(() => [] as string[]);
    for (const name of names) {
      if (!CLIP_NAME.test(name) || inUse.has(name) || pendingAtStart.has(name) || this.pending.has(name)) continue;
      if ((this.savedAt.get(name) ?? 0) > startedAt) continue;
      if (this.graceMs > 0 && (await this.ageMs(name)) < this.graceMs) continue;
      this.savedAt.delete(name);
      for (const key of this.cache.keys()) if (key.split('|').includes(name)) this.cache.delete(key);
      await rm(join(this.dir, name), { force: true });
    }
    // Later sweeps start later: what was saved before this one no longer needs remembering.
    for (const [name, at] of this.savedAt) if (at <= startedAt && !this.pending.has(name)) this.savedAt.delete(name);
  }

  private async ageMs(name: string): Promise<number> {
    const stats = await stat(join(this.dir, name)).catch(() => undefined);
    return stats ? Date.now() - stats.mtimeMs : Infinity;
  }

  private async read(audioPath: string, textPath: string, rate: number | undefined): Promise<ReferenceClip> {
    for (const name of [audioPath, textPath]) {
      if (!CLIP_NAME.test(basename(name)) || basename(name) !== name) throw new Error(`"${name}" is not a stored reference clip`);
    }
    const [wav, transcript] = await Promise.all([readFile(join(this.dir, audioPath)), readFile(join(this.dir, textPath), 'utf8')]);
    const header = wavHeader(wav);
    if (!header) throw new Error(`"${audioPath}" is not a complete WAV file`);
    if (rate === undefined || header.sampleRate === rate) return { wav, transcript, id: audioPath.slice(0, 64) };
    // The voice's engine changed since the upload: its clip at the new engine's rate, made once.
    const samples = await resampleAll(toFloat(wav.subarray(header.dataOffset)), header.sampleRate, rate);
    const converted = encodeWav(toPcm16(samples), rate);
    return { wav: converted, transcript, id: createHash('sha256').update(converted).digest('hex') };
  }
}
