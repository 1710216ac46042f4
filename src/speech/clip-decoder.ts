// Reference clip uploads, decoded in-process (no ffmpeg): WAV (wavefile: any PCM or float bit
// depth), MP3 (mpg123-decoder), Ogg Opus (ogg-opus-decoder), FLAC (@wasm-audio-decoders/flac) and
// WebM/Matroska with Opus, as a browser's MediaRecorder records (mediabunny demuxes it,
// opus-decoder decodes its packets), told apart by their first bytes. The clip is mixed to mono,
// trimmed of leading and trailing silence, checked (3–30 s, not silent, not clipped) and resampled
// to its engine's rate as one mono PCM16 WAV: what the engine is sent and what is stored. A clip
// that fails is a ClipError, answered with a 400 naming the reason. decodeAudio() is the same
// decoding without the clip's checks (the transcription endpoint's).
import { FLACDecoder } from '@wasm-audio-decoders/flac';
import { MPEGDecoder } from 'mpg123-decoder';
import { OggOpusDecoder } from 'ogg-opus-decoder';
import wavefile from 'wavefile';
import { encodeWav } from '../transcribe/wav.ts';
import { resampleAll, toPcm16 } from './resampler.ts';

export class ClipError extends Error {}

export const CLIP_MIN_SECONDS = 3;
export const CLIP_MAX_SECONDS = 30;
/** Quieter than this (dBFS, 10 ms windows) is silence at the clip's ends. */
const SILENCE_DBFS = -45;
/** Kept on each side of the trimmed speech, so no onset or decay is cut. */
const MARGIN_SECONDS = 0.05;
/** A clip whose loudest 10 ms is below this is silent. */
const SILENT_DBFS = -40;
/** More than this share of samples at full scale: clipped. */
const CLIPPED_SHARE = 0.001;

interface Decoded {
  channels: Float32Array[];
  sampleRate: number;
}

type Format = { name: string; test: (b: Buffer) => boolean; decode: (b: Buffer) => Promise<Decoded> };

const ascii = (b: Buffer, at: number, text: string) => b.length >= at + text.length && b.toString('latin1', at, at + text.length) === text;

/** The decoders, by what a file starts with. */
const FORMATS: Format[] = [
  { name: 'WAV', test: (b) => ascii(b, 0, 'RIFF') && ascii(b, 8, 'WAVE'), decode: decodeWav },
  { name: 'FLAC', test: (b) => ascii(b, 0, 'fLaC'), decode: (b) => wasmDecode(new FLACDecoder(), b) },
  { name: 'Ogg Opus', test: (b) => ascii(b, 0, 'OggS'), decode: decodeOgg },
  { name: 'MP3', test: (b) => ascii(b, 0, 'ID3') || (b.length > 1 && b[0] === 0xff && ((b[1] ?? 0) & 0xe0) === 0xe0), decode: decodeMp3 },
  { name: 'WebM', test: (b) => b.readUInt32BE(0) === 0x1a45dfa3, decode: decodeWebm },
];
const FORMAT_NAMES = 'WAV, MP3, Ogg Opus, FLAC or WebM/Opus';

async function decodeWav(bytes: Buffer): Promise<Decoded> {
  let wav: InstanceType<typeof wavefile.WaveFile>;
  try {
    wav = new wavefile.WaveFile(bytes);
    wav.toBitDepth('32f');
  } catch (error) {
    throw new ClipError(`the WAV file cannot be read (${error instanceof Error ? error.message : String(error)})`);
  }
  const fmt = wav.fmt as { numChannels: number; sampleRate: number };
  const samples = wav.getSamples(false, Float32Array) as unknown as Float32Array | Float32Array[];
  return { channels: Array.isArray(samples) ? samples : [samples], sampleRate: fmt.sampleRate };
}

async function decodeMp3(bytes: Buffer): Promise<Decoded> {
  const decoder = new MPEGDecoder();
  await decoder.ready;
  try {
    const out = decoder.decode(bytes);
    return { channels: out.channelData, sampleRate: out.sampleRate };
  } finally {
    decoder.free();
  }
}

async function decodeOgg(bytes: Buffer): Promise<Decoded> {
  // Ogg Vorbis and others carry no OpusHead in their first page.
  if (!bytes.subarray(0, 200).includes('OpusHead')) throw new ClipError('only Ogg Opus is decoded (this Ogg file holds another codec, e.g. Vorbis)');
  return wasmDecode(new OggOpusDecoder(), bytes);
}

/** WebM (or any Matroska) holding Opus: its packets demuxed, then decoded as the track's OpusHead says. */
async function decodeWebm(bytes: Buffer): Promise<Decoded> {
  // Loaded on the first WebM upload: the demuxer is large, and most processes never need it.
  const [{ BufferSource, EncodedPacketSink, Input, MATROSKA, WEBM }, { OpusDecoder }] = await Promise.all([import('mediabunny'), import('opus-decoder')]);
  const input = new Input({ formats: [WEBM, MATROSKA], source: new BufferSource(bytes) });
  try {
    const track = await input.getPrimaryAudioTrack();
    if (!track) throw new ClipError('the WebM file holds no audio track');
    if (track.codec !== 'opus') throw new ClipError(`only Opus is decoded in WebM (this one holds ${track.codec ?? 'an unknown codec'}): upload WAV, MP3, Ogg Opus or FLAC instead`);
    const config = await track.getDecoderConfig();
    const head = opusHead(config?.description, track.numberOfChannels);
    const packets: Uint8Array[] = [];
    for await (const packet of new EncodedPacketSink(track).packets()) packets.push(packet.data);
    const decoder = new OpusDecoder({ ...head, sampleRate: 48_000 });
    await decoder.ready;
    try {
      const out = decoder.decodeFrames(packets);
      return { channels: out.channelData, sampleRate: out.sampleRate };
    } finally {
      decoder.free();
    }
  } finally {
    input.dispose();
  }
}

/** The decoder settings of an OpusHead (RFC 7845 §5.1): channels, pre-skip and, past stereo, the stream mapping. */
function opusHead(description: AllowSharedBufferSource | undefined, channels: number) {
  const head = description === undefined ? undefined : ArrayBuffer.isView(description) ? Buffer.from(description.buffer, description.byteOffset, description.byteLength) : Buffer.from(description);
  if (!head || head.length < 19 || head.toString('latin1', 0, 8) !== 'OpusHead') return { channels: Math.min(2, channels || 1), preSkip: 0 };
  const count = head[9] ?? 1;
  const base = { channels: count, preSkip: head.readUInt16LE(10) };
  if (head[18] === 0 || head.length < 21 + count) return base;
  return { ...base, streamCount: head[19] ?? 1, coupledStreamCount: head[20] ?? 0, channelMappingTable: [...head.subarray(21, 21 + count)] };
}

async function wasmDecode(decoder: { ready: Promise<void>; free(): void; decodeFile(data: Uint8Array): Promise<{ channelData: Float32Array[]; sampleRate: number }> }, bytes: Buffer): Promise<Decoded> {
  await decoder.ready;
  try {
    const out = await decoder.decodeFile(bytes);
    return { channels: out.channelData, sampleRate: out.sampleRate };
  } finally {
    decoder.free();
  }
}

function mono(channels: Float32Array[]): Float32Array {
  const first = channels[0];
  if (!first) return new Float32Array(0);
  if (channels.length === 1) return first;
  const out = new Float32Array(first.length);
  for (const channel of channels) for (let i = 0; i < out.length; i++) out[i]! += (channel[i] ?? 0) / channels.length;
  return out;
}

const dbfs = (rms: number) => (rms > 0 ? 20 * Math.log10(rms) : -Infinity);

/** Loudness of each 10 ms window. */
function windowLevels(samples: Float32Array, rate: number): { size: number; levels: number[] } {
  const size = Math.max(1, Math.round(rate / 100));
  const levels: number[] = [];
  for (let start = 0; start < samples.length; start += size) {
    let sum = 0;
    const end = Math.min(samples.length, start + size);
    for (let i = start; i < end; i++) sum += (samples[i] ?? 0) ** 2;
    levels.push(dbfs(Math.sqrt(sum / (end - start))));
  }
  return { size, levels };
}

/** The clip without its silent ends (a margin kept), checked for length, silence and clipping. */
export function trimAndCheck(samples: Float32Array, rate: number): Float32Array {
  const { size, levels } = windowLevels(samples, rate);
  const loudest = Math.max(-Infinity, ...levels);
  if (loudest < SILENT_DBFS) throw new ClipError(`the clip is silent (its loudest moment is ${loudest === -Infinity ? '−∞' : loudest.toFixed(0)} dBFS)`);
  const first = levels.findIndex((l) => l >= SILENCE_DBFS);
  const last = levels.length - 1 - [...levels].reverse().findIndex((l) => l >= SILENCE_DBFS);
  const margin = Math.round(MARGIN_SECONDS * rate);
  const trimmed = samples.subarray(Math.max(0, first * size - margin), Math.min(samples.length, (last + 1) * size + margin));
  const seconds = trimmed.length / rate;
  if (seconds < CLIP_MIN_SECONDS || seconds > CLIP_MAX_SECONDS) {
    throw new ClipError(`the clip is ${seconds.toFixed(1)} s of sound after trimming silence; it must be ${CLIP_MIN_SECONDS}–${CLIP_MAX_SECONDS} s`);
  }
  let full = 0;
  for (const v of trimmed) if (Math.abs(v) >= 0.999) full++;
  if (full / trimmed.length > CLIPPED_SHARE) throw new ClipError(`the clip is clipped (${((full / trimmed.length) * 100).toFixed(2)} % of its samples at full scale): record it quieter`);
  return trimmed;
}

/** Any of the formats above as mono samples at their own rate, with the format's name. */
export async function decodeAudio(bytes: Buffer): Promise<{ samples: Float32Array; sampleRate: number; format: string }> {
  const format = FORMATS.find((f) => bytes.length >= 4 && f.test(bytes));
  if (!format) throw new ClipError(`the audio is not ${FORMAT_NAMES}`);
  let decoded: Decoded;
  try {
    decoded = await format.decode(bytes);
  } catch (error) {
    if (error instanceof ClipError) throw error;
    throw new ClipError(`the ${format.name} audio cannot be decoded (${error instanceof Error ? error.message : String(error)})`);
  }
  if (!(decoded.sampleRate > 0) || decoded.channels.length === 0) throw new ClipError(`the ${format.name} audio holds no sound`);
  return { samples: mono(decoded.channels), sampleRate: decoded.sampleRate, format: format.name };
}

/** Decodes an uploaded clip into the stored form: mono PCM16 WAV at `rate` (its engine's), trimmed and checked. */
export async function prepareClip(bytes: Buffer, rate: number): Promise<{ wav: Buffer; seconds: number; format: string }> {
  const decoded = await decodeAudio(bytes);
  const trimmed = trimAndCheck(decoded.samples, decoded.sampleRate);
  const resampled = await resampleAll(trimmed, decoded.sampleRate, rate);
  return { wav: encodeWav(toPcm16(resampled), rate), seconds: resampled.length / rate, format: decoded.format };
}
