// PCM16 mono out of WAV: the header of a stored reference clip, and the PCM of a WAV that arrives
// as a stream (servers that answer WAV whatever format is asked for, or stream a WAV with an
// open-ended size, as Chatterbox's TTS API does). A WAV of another shape is an error naming it.

export interface WavHeader {
  sampleRate: number;
  channels: number;
  bitsPerSample: number;
  /** 1 = integer PCM. */
  format: number;
  /** Where the samples start. */
  dataOffset: number;
}

const RIFF = (b: Uint8Array) => b.length >= 12 && Buffer.from(b.buffer, b.byteOffset, 12).toString('latin1', 0, 4) === 'RIFF' && Buffer.from(b.buffer, b.byteOffset, 12).toString('latin1', 8, 12) === 'WAVE';

/** The header, once `bytes` holds all of it (undefined while more is needed); throws on a file that is not WAV. */
export function wavHeader(bytes: Buffer): WavHeader | undefined {
  if (bytes.length < 12) return undefined;
  if (!RIFF(bytes)) throw new Error('the audio is not a WAV file');
  let fmt: Omit<WavHeader, 'dataOffset'> | undefined;
  for (let at = 12; at + 8 <= bytes.length; ) {
    const id = bytes.toString('latin1', at, at + 4);
    const size = bytes.readUInt32LE(at + 4);
    if (id === 'data') {
      if (!fmt) throw new Error('the WAV has no format chunk before its samples');
      return { ...fmt, dataOffset: at + 8 };
    }
    if (at + 8 + size > bytes.length) return undefined;
    if (id === 'fmt ') fmt = { format: bytes.readUInt16LE(at + 8), channels: bytes.readUInt16LE(at + 10), sampleRate: bytes.readUInt32LE(at + 12), bitsPerSample: bytes.readUInt16LE(at + 22) };
    at += 8 + size + (size % 2); // chunks are word-aligned
  }
  return undefined;
}

/** Throws unless the header is mono 16-bit PCM at `rate`. */
export function checkPcm16(header: WavHeader, rate: number, what: string): void {
  if (header.format !== 1 || header.bitsPerSample !== 16 || header.channels !== 1) {
    throw new Error(`${what} sent ${header.channels}-channel ${header.bitsPerSample}-bit WAV (format ${header.format}); only mono 16-bit PCM is read`);
  }
  if (header.sampleRate !== rate) throw new Error(`${what} sent ${header.sampleRate} Hz audio where ${rate} Hz was configured (TTS_SAMPLE_RATE)`);
}

/**
 * The PCM of a response body that is raw PCM16 or a WAV (told by its first bytes): a WAV's
 * header is read and checked, and only its samples are passed on, as they arrive.
 */
export async function* pcmOfBody(parts: AsyncIterable<Uint8Array>, rate: number, what: string): AsyncGenerator<Uint8Array> {
  let head: Buffer | undefined = Buffer.alloc(0);
  for await (const part of parts) {
    if (head === undefined) {
      yield part;
      continue;
    }
    head = Buffer.concat([head, part]);
    if (head.length < 12) continue;
    if (!RIFF(head)) {
      yield head; // raw PCM
      head = undefined;
      continue;
    }
    const header = wavHeader(head);
    if (!header) continue;
    checkPcm16(header, rate, what);
    if (head.length > header.dataOffset) yield head.subarray(header.dataOffset);
    head = undefined;
  }
  if (head !== undefined && head.length > 0 && !RIFF(head)) yield head; // a body shorter than a WAV header: raw PCM
}
