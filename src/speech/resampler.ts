// Band-limited resampling of a PCM16 stream (libsamplerate's sinc converter, compiled to WASM):
// every engine's audio leaves at OUTPUT_SAMPLE_RATE whatever the engine's own rate. One converter
// per stream, so its filter state carries across chunks (no clicks at chunk boundaries).
import LibSampleRate from '@alexanderolsen/libsamplerate-js';

/** PCM16 LE mono → float samples in [-1, 1). */
export function toFloat(pcm: Buffer): Float32Array {
  const out = new Float32Array(pcm.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = pcm.readInt16LE(i * 2) / 32768;
  return out;
}

/** Float samples → PCM16 LE mono, clamped. */
export function toPcm16(samples: Float32Array): Buffer {
  const out = Buffer.allocUnsafe(samples.length * 2);
  for (let i = 0; i < samples.length; i++) {
    const v = Math.round((samples[i] ?? 0) * 32768);
    out.writeInt16LE(v > 32767 ? 32767 : v < -32768 ? -32768 : v, i * 2);
  }
  return out;
}

type Converter = Awaited<ReturnType<typeof LibSampleRate.create>>;

/**
 * Converters kept for reuse, per rate pair: creating one instantiates a WASM module with 8 MB of
 * buffers, too much to do per sentence. A reused one is reset first (setting its rate re-inits it),
 * so no state leaks from one stream into the next.
 */
const IDLE_PER_PAIR = 4;
const idle = new Map<string, Converter[]>();

async function acquire(from: number, to: number): Promise<Converter> {
  const reused = idle.get(`${from}>${to}`)?.pop();
  if (reused) {
    reused.outputSampleRate = to; // destroy + init: a fresh filter state
    return reused;
  }
  return LibSampleRate.create(1, from, to, { converterType: LibSampleRate.ConverterType.SRC_SINC_FASTEST });
}

function release(converter: Converter, from: number, to: number): void {
  const key = `${from}>${to}`;
  const list = idle.get(key) ?? [];
  if (list.length >= IDLE_PER_PAIR) return converter.destroy();
  list.push(converter);
  idle.set(key, list);
}

/**
 * The stream at `to` Hz (the stream itself when the rates match). The fastest sinc converter: still
 * band-limited, and cheap enough for every sentence of every session; the converter's last few
 * milliseconds of filter delay are not flushed at the end of a sentence (the next one starts anew).
 */
export async function* resampled(stream: AsyncIterable<Buffer>, from: number, to: number): AsyncGenerator<Buffer> {
  if (from === to) {
    yield* stream;
    return;
  }
  const converter = await acquire(from, to);
  try {
    for await (const pcm of stream) {
      const out = converter.full(toFloat(pcm));
      if (out.length > 0) yield toPcm16(out);
    }
  } finally {
    release(converter, from, to);
  }
}

/** A whole clip at `to` Hz (for reference clips, resampled once when stored). */
export async function resampleAll(samples: Float32Array, from: number, to: number): Promise<Float32Array> {
  if (from === to) return samples;
  const converter = await LibSampleRate.create(1, from, to, { converterType: LibSampleRate.ConverterType.SRC_SINC_MEDIUM_QUALITY });
  try {
    return converter.simple(samples);
  } finally {
    converter.destroy();
  }
}
