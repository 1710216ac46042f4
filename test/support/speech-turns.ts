// One character's spoken turn as a test client hears it, and the tones the loopback speech servers
// answer with: a reply scripted on the loopback LLM, the audio of that character's message (its
// rate and PCM), a tone's frequency measured from zero crossings, a tone as a stored clip.
import { type Frame, TestClient } from './client.ts';
import { encodeWav, type EngineServer, tokenize } from './engine-server.ts';

/** A tone as a stored reference clip's WAV (mono PCM16). */
export function toneClipWav(frequency: number, rate = 24_000, seconds = 3): Buffer {
  const pcm = Buffer.alloc(rate * seconds * 2);
  for (let i = 0; i < rate * seconds; i++) pcm.writeInt16LE(Math.round(Math.sin((2 * Math.PI * frequency * i) / rate) * 8000), i * 2);
  return encodeWav(pcm, rate);
}

/** A pure tone's frequency from its zero crossings. */
export function toneHz(pcm: Buffer, rate: number): number {
  let crossings = 0;
  let previous = 0;
  for (let i = 0; i < pcm.length / 2; i++) {
    const v = pcm.readInt16LE(i * 2);
    if ((previous < 0 && v >= 0) || (previous >= 0 && v < 0)) crossings++;
    previous = v;
  }
  return crossings / 2 / (pcm.length / 2 / rate);
}

/** One turn of `name`: its text reply from the LLM, and the session's audio of it (rate and PCM). */
export async function turn(llm: EngineServer, client: TestClient, name: string, reply: string) {
  llm.chat.enqueue({ tokens: tokenize(reply) });
  const before = client.frames.length;
  const mine = (f: Frame) => client.frames.indexOf(f) >= before && 'data' in f && (f.data as { character_name?: string }).character_name === name;
  client.send({ type: 'user_message', data: { text: `${name}, speak.` } });
  const stop = await client.waitFor((f) => f.type === 'audio_stream_stop' && mine(f), `${name}'s audio`, 20_000);
  const messageId = (stop as { data: { message_id: string } }).data.message_id;
  const frames = client.frames.slice(before, client.frames.indexOf(stop) + 1);
  const start = frames.find((f) => f.type === 'audio_stream_start' && (f.data as { message_id: string }).message_id === messageId);
  const pcm: Buffer[] = [];
  frames.forEach((f, i) => {
    const next = frames[i + 1];
    if (f.type === 'audio_chunk' && f.data.message_id === messageId && next?.type === 'binary') pcm.push(next.data);
  });
  return { rate: (start as { data: { sample_rate: number } } | undefined)?.data.sample_rate, pcm: Buffer.concat(pcm), frames };
}
