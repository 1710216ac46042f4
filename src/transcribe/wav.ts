// A canonical 44-byte-header WAV (PCM16 mono) around 16 kHz samples: what every
// /v1/audio/transcriptions server accepts without ffmpeg guessing at a format.

export function encodeWav(pcm: Int16Array | Buffer, sampleRate: number): Buffer {
  const bytes = pcm instanceof Buffer ? pcm : Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength);
  const header = Buffer.alloc(44);
  header.write('RIFF', 0, 'ascii');
  header.writeUInt32LE(36 + bytes.length, 4);
  header.write('WAVEfmt ', 8, 'ascii');
  header.writeUInt32LE(16, 16); // fmt chunk size
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(sampleRate, 24);
  header.writeUInt32LE(sampleRate * 2, 28); // bytes per second
  header.writeUInt16LE(2, 32); // block align
  header.writeUInt16LE(16, 34); // bits per sample
  header.write('data', 36, 'ascii');
  header.writeUInt32LE(bytes.length, 40);
  return Buffer.concat([header, bytes]);
}
