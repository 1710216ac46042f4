// Narration over a real socket: a character set (over the WebSocket) to `narrated` speaks its
// dialogue in its own voice and its actions and unquoted text in its narrator voice, one speech
// request per part (the client plays them in the reply's order); no URL or code reaches the TTS; the text the client
// sees is the reply unchanged; an interrupt keeps the text up to the part being heard.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createOpenAiTtsEngine } from '../src/speech/engines/openai.ts';
import { type ChorusUnderTest, startChorus } from './support/chorus.ts';
import { TestClient } from './support/client.ts';
import { closeTestDatabases, openTestDatabases, resetData } from './support/db.ts';
import { type EngineServer, startEngineServer, tokenize } from './support/engine-server.ts';

let llm: EngineServer;
let tts: EngineServer;
let chorus: ChorusUnderTest;
/** Long audio, all of it sent at once (AUDIO_LEAD_MS): a reply plays for seconds after its audio is in. */
const MS_PER_CHAR = 100;

/** Milliseconds of a message's audio the client has received (24 kHz PCM16). */
function receivedMs(client: TestClient, messageId: string): number {
  let bytes = 0;
  client.frames.forEach((f, i) => {
    const next = client.frames[i + 1];
    if (f.type === 'audio_chunk' && f.data.message_id === messageId && next?.type === 'binary') bytes += next.data.length;
  });
  return bytes / 2 / 24;
}

before(async () => {
  llm = await startEngineServer();
  tts = await startEngineServer({ speech: { msPerChar: MS_PER_CHAR } });
  const [db] = await openTestDatabases();
  await resetData(db!.database);
  const engine = createOpenAiTtsEngine({ baseUrl: tts.baseUrl, apiKey: undefined, model: 'tts-1', sampleRate: 24_000, timeoutMs: 10_000, defaultVoice: 'alloy' });
  chorus = await startChorus({ database: db!.database, env: { LLM_BASE_URL: llm.baseUrl, LLM_API_KEY: 'k', TTS_LOOKAHEAD: '2', AUDIO_LEAD_MS: '20000' }, tts: engine });
});

after(async () => {
  await chorus?.close();
  await llm?.close();
  await tts?.close();
  await closeTestDatabases();
});

test('narrated: dialogue in the character voice, narration in the narrator voice, in order; no URL or code is spoken', async () => {
  await chorus.repo.createVoice({ voice: 'ada-voice', engine: 'openai', engine_voice: 'nova' });
  await chorus.repo.createVoice({ voice: 'narrator', engine: 'openai', engine_voice: 'onyx' });
  const ada = await chorus.repo.createCharacter({ name: 'Ada', system_prompt: 'You are Ada.', voice: 'ada-voice' });
  assert.equal(ada.narration, null, 'a new character uses the default');
  const client = await TestClient.connect(chorus.wsUrl);
  try {
    const updated = await client.request({ type: 'update_character', data: { id: ada.id, narration: 'narrated', narrator_voice: 'narrator' } });
    assert.equal(updated.type, 'character_updated');
    assert.deepEqual([updated.data.narration, updated.data.narrator_voice], ['narrated', 'narrator']);

    const reply = '*Ada smiles warmly.* "Hello there, it is good to see you." She points at https://example.com/map and types `ls -la` twice. "Come in!"';
    llm.chat.enqueue({ tokens: tokenize(reply) });
    client.send({ type: 'user_message', data: { text: 'Ada?' } });
    await client.next('audio_stream_stop', 20_000);

    // Each part once, in its voice. With synthesis ahead (TTS_LOOKAHEAD) the requests of later
    // parts run side by side, so the order they reach the server is not theirs: the order the
    // client plays them in is checked below.
    const byText = (a: string[], b: string[]) => a[1]!.localeCompare(b[1]!);
    const spoken = tts.speech.requests.map((r) => [String(r.body.voice), String(r.body.input)]);
    assert.deepEqual(spoken.sort(byText), [
      ['onyx', 'Ada smiles warmly.'],
      ['nova', 'Hello there, it is good to see you.'],
      ['onyx', 'She points at and types twice.'],
      ['nova', 'Come in!'],
    ].sort(byText));
    const chunks = client.ofType('text_chunk').filter((c) => !c.data.is_final).map((c) => c.data.text).join('');
    assert.equal(chunks, reply, 'the client sees the reply as written');
    const indexes = client.ofType('audio_chunk').map((c) => c.data.sentence_index);
    assert.deepEqual([...new Set(indexes)], [...new Set(indexes)].sort((a, b) => a - b), 'the parts are played in order');
    assert.ok(new Set(indexes).size >= 4, 'every part has audio');
  } finally {
    await client.close();
  }
});

test('an interrupt inside a narrated part keeps the text up to the word heard, the parts before it whole', async () => {
  const ada = (await chorus.repo.listCharacters()).find((c) => c.name === 'Ada');
  assert.ok(ada, 'made by the test before');
  tts.reset();
  const client = await TestClient.connect(chorus.wsUrl);
  try {
    // The second sentence is three parts: character, narrator, character.
    const reply = '*She nods slowly.* "First I say this," she whispers, "and then the rest."';
    const parts = ['She nods slowly.', 'First I say this,', 'she whispers,', 'and then the rest.'];
    llm.chat.enqueue({ tokens: tokenize(reply) });
    client.send({ type: 'user_message', data: { text: 'Ada?' } });
    const start = await client.next('text_stream_start');
    const messageId = start.data.message_id;
    // The first three parts and 30 % of the fourth played: the cut is the word boundary before that.
    const played = (parts[0]!.length + parts[1]!.length + parts[2]!.length + 0.3 * parts[3]!.length) * MS_PER_CHAR;
    // All of it is in first: the part being played has all its audio (the cut is a fraction of it).
    const total = parts.join('').length * MS_PER_CHAR;
    await client.waitFor(() => receivedMs(client, messageId) >= total, 'all the audio', 20_000);
    client.send({ type: 'playback_position', data: { message_id: messageId, played_ms: played } });
    client.send({ type: 'interrupt' });
    const truncated = await client.next('message_truncated');
    assert.equal(truncated.data.text, '*She nods slowly.* "First I say this," she whispers, "and');
    assert.deepEqual(tts.speech.requests.map((r) => r.body.input), parts);
  } finally {
    await client.close();
  }
});

test('a narrator voice must exist, and deleting it sets the characters\' narrator_voice to null', async () => {
  const ada = (await chorus.repo.listCharacters()).find((c) => c.name === 'Ada');
  assert.ok(ada?.narrator_voice === 'narrator', 'set by the first test');
  await assert.rejects(chorus.repo.updateCharacter({ id: ada.id, narrator_voice: 'no-such-voice' }), /voice "no-such-voice" does not exist/);
  await chorus.repo.deleteVoice('narrator');
  const after = await chorus.repo.getCharacter(ada.id);
  assert.deepEqual([after.narration, after.narrator_voice, after.voice], ['narrated', null, 'ada-voice']);
});
