// Audio encoders for tests: real speech (espeak PCM16) encoded the way uploads arrive — MP3 (LAME,
// @breezystack/lamejs), FLAC (libFLAC, libflacjs), and Opus (libopus, opusscript) muxed into
// Ogg and WebM by mediabunny, as a browser's MediaRecorder would write them. Dev dependencies only.
import { createRequire } from 'node:module';
import { Mp3Encoder } from '@breezystack/lamejs';
import { BufferTarget, EncodedAudioPacketSource, EncodedPacket, OggOutputFormat, Output, WebMOutputFormat } from 'mediabunny';
import OpusScript from 'opusscript';
import { resampleAll, toFloat, toPcm16 } from '../../src/speech/resampler.ts';

export function mp3Of(pcm: Buffer, rate: number): Buffer {
  const encoder = new Mp3Encoder(1, rate, 96);
  const samples = new Int16Array(pcm.buffer, pcm.byteOffset, pcm.length / 2);
  const parts: Uint8Array[] = [];
  for (let i = 0; i < samples.length; i += 1152) parts.push(encoder.encodeBuffer(samples.subarray(i, i + 1152)));
  parts.push(encoder.flush());
  return Buffer.concat(parts.map((p) => Buffer.from(p)));
}

/** The part of libflac.js these tests use (it ships no ES module types). */
interface LibFlac {
  isReady(): boolean;
  on(event: 'ready', listener: () => void): void;
  create_libflac_encoder(rate: number, channels: number, bitsPerSample: number, compression: number, totalSamples: number, verify: boolean): number;
  init_encoder_stream(encoder: number, write: (data: Uint8Array) => void): number;
  FLAC__stream_encoder_process_interleaved(encoder: number, samples: Int32Array, count: number): boolean;
  FLAC__stream_encoder_finish(encoder: number): boolean;
  FLAC__stream_encoder_delete(encoder: number): void;
}

let flac: Promise<LibFlac> | undefined;
function libFlac(): Promise<LibFlac> {
  flac ??= new Promise((resolve) => {
    // The asm.js build: its WASM build fetches its .wasm by URL, which Node's fetch cannot read from disk.
    const lib = createRequire(import.meta.url)('libflacjs')('release') as LibFlac;
    if (lib.isReady()) resolve(lib);
    else lib.on('ready', () => resolve(lib));
  });
  return flac;
}

export async function flacOf(pcm: Buffer, rate: number): Promise<Buffer> {
  const lib = await libFlac();
  const samples = Int32Array.from(new Int16Array(pcm.buffer, pcm.byteOffset, pcm.length / 2));
  const encoder = lib.create_libflac_encoder(rate, 1, 16, 5, samples.length, false);
  const parts: Buffer[] = [];
  try {
    lib.init_encoder_stream(encoder, (data) => parts.push(Buffer.from(data)));
    if (!lib.FLAC__stream_encoder_process_interleaved(encoder, samples, samples.length) || !lib.FLAC__stream_encoder_finish(encoder)) throw new Error('FLAC encoding failed');
  } finally {
    lib.FLAC__stream_encoder_delete(encoder);
  }
  return Buffer.concat(parts);
}

const OPUS_RATE = 48_000;
const FRAME = 960; // 20 ms
/** libopus's encoder delay at 48 kHz: the pre-skip the OpusHead announces. */
const PRE_SKIP = 312;

/** An OpusHead (RFC 7845 §5.1) for mono 48 kHz: what Ogg needs as the codec's description. */
function opusHead(inputRate: number): Uint8Array {
  const head = Buffer.alloc(19);
  head.write('OpusHead', 0, 'latin1');
  head[8] = 1; // version
  head[9] = 1; // channels
  head.writeUInt16LE(PRE_SKIP, 10);
  head.writeUInt32LE(inputRate, 12);
  return new Uint8Array(head);
}

/** The speech as Opus (mono, 20 ms packets) in an Ogg or WebM container. */
async function opusIn(container: 'ogg' | 'webm', pcm: Buffer, rate: number): Promise<Buffer> {
  const at48k = toPcm16(await resampleAll(toFloat(pcm), rate, OPUS_RATE));
  const encoder = new OpusScript(OPUS_RATE, 1, OpusScript.Application.AUDIO);
  const target = new BufferTarget();
  const output = new Output({ format: container === 'ogg' ? new OggOutputFormat() : new WebMOutputFormat(), target });
  const source = new EncodedAudioPacketSource('opus');
  output.addAudioTrack(source);
  await output.start();
  try {
    const frames = Math.ceil(at48k.length / 2 / FRAME);
    const padded = Buffer.concat([at48k, Buffer.alloc(frames * FRAME * 2 - at48k.length)]);
    for (let i = 0; i < frames; i++) {
      const packet = encoder.encode(padded.subarray(i * FRAME * 2, (i + 1) * FRAME * 2), FRAME);
      const meta = i === 0 ? { decoderConfig: { codec: 'opus' as const, numberOfChannels: 1, sampleRate: OPUS_RATE, description: opusHead(rate) } } : undefined;
      await source.add(new EncodedPacket(new Uint8Array(packet), 'key', (i * FRAME) / OPUS_RATE, FRAME / OPUS_RATE), meta);
    }
    await output.finalize();
  } finally {
    encoder.delete();
  }
  if (!target.buffer) throw new Error(`${container} muxing produced nothing`);
  return Buffer.from(target.buffer);
}

export const oggOpusOf = (pcm: Buffer, rate: number) => opusIn('ogg', pcm, rate);
export const webmOpusOf = (pcm: Buffer, rate: number) => opusIn('webm', pcm, rate);
