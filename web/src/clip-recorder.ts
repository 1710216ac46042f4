// Recording a reference clip from the microphone: MediaRecorder records what the browser can
// (WebM/Opus in Chromium and Firefox, MP4/AAC in Safari). WebM and Ogg with Opus are uploaded as
// recorded (the server decodes them); anything else is decoded by the browser itself
// (AudioContext.decodeAudioData) into a mono 16-bit WAV first, since the server has no AAC decoder.

export interface ClipRecording {
  /** The recording, and a file name saying its format. */
  stop(): Promise<{ blob: Blob; name: string }>;
  cancel(): void;
}

/** Recorded types the server decodes as they are, and the file name each is sent under. */
const AS_RECORDED: ReadonlyArray<[RegExp, string]> = [
  [/^audio\/webm;.*opus/i, 'recording.webm'],
  [/^audio\/ogg;.*opus/i, 'recording.ogg'],
];

export async function startRecording(): Promise<ClipRecording> {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true } });
  const recorder = new MediaRecorder(stream);
  const parts: Blob[] = [];
  recorder.addEventListener('dataavailable', (ev) => parts.push(ev.data));
  const stopped = new Promise<void>((resolve) => recorder.addEventListener('stop', () => resolve(), { once: true }));
  const release = () => stream.getTracks().forEach((t) => t.stop());
  recorder.start(250);
  return {
    async stop() {
      recorder.stop();
      await stopped;
      release();
      const recording = new Blob(parts, { type: recorder.mimeType });
      const kept = AS_RECORDED.find(([type]) => type.test(recorder.mimeType));
      return kept ? { blob: recording, name: kept[1] } : { blob: await toWav(recording), name: 'recording.wav' };
    },
    cancel() {
      if (recorder.state !== 'inactive') recorder.stop();
      release();
    },
  };
}

/** Any audio the browser can decode, as a mono PCM16 WAV at its own rate. */
export async function toWav(recording: Blob): Promise<Blob> {
  const context = new AudioContext();
  try {
    const audio = await context.decodeAudioData(await recording.arrayBuffer());
    const mono = new Float32Array(audio.length);
    for (let c = 0; c < audio.numberOfChannels; c++) {
      const data = audio.getChannelData(c);
      for (let i = 0; i < mono.length; i++) mono[i]! += (data[i] ?? 0) / audio.numberOfChannels;
    }
    return new Blob([wavBytes(mono, audio.sampleRate)], { type: 'audio/wav' });
  } finally {
    void context.close();
  }
}

function wavBytes(samples: Float32Array, rate: number): ArrayBuffer {
  const out = new DataView(new ArrayBuffer(44 + samples.length * 2));
  const text = (at: number, s: string) => [...s].forEach((ch, i) => out.setUint8(at + i, ch.charCodeAt(0)));
  text(0, 'RIFF');
  out.setUint32(4, 36 + samples.length * 2, true);
  text(8, 'WAVEfmt ');
  out.setUint32(16, 16, true);
  out.setUint16(20, 1, true); // PCM
  out.setUint16(22, 1, true); // mono
  out.setUint32(24, rate, true);
  out.setUint32(28, rate * 2, true);
  out.setUint16(32, 2, true);
  out.setUint16(34, 16, true);
  text(36, 'data');
  out.setUint32(40, samples.length * 2, true);
  samples.forEach((v, i) => out.setInt16(44 + i * 2, Math.max(-32768, Math.min(32767, Math.round(v * 32768))), true));
  return out.buffer;
}
