// The starter cast a fresh database gets (Repo.ensureStarterCast): three espeak-ng voices and
// three characters. The characters are Character Card V2 files in seed-cards/, read by the same
// code as a card imported over REST (cards.ts), so the seed data is an import like any other.
// Voice ids are voice+variant (plain `en-gb` does not load in espeak-ng, `en-gb-x-rp` does).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { cardFromFile } from '../cards.ts';
import type { VoiceCreate } from '../protocol.ts';
import type { CharacterImport } from './repo.ts';

export const STARTER_VOICES: VoiceCreate[] = [
  {
    voice: 'mira-warm',
    method: 'preset',
    speaker_desc: 'Warm, bright American woman; unhurried and friendly.',
    engine: 'espeak',
    engine_voice: 'en-us+f3',
    speed: 1,
    pitch: 1.15,
  },
  {
    voice: 'harlan-dry',
    method: 'preset',
    speaker_desc: 'Low, measured British man; dry and deliberate.',
    engine: 'espeak',
    engine_voice: 'en-gb-x-rp+m3',
    speed: 0.9,
    pitch: 0.8,
  },
  {
    voice: 'pip-quick',
    method: 'preset',
    speaker_desc: 'Quick, high-spirited American voice; words tumble out.',
    engine: 'espeak',
    engine_voice: 'en-us+m7',
    speed: 1.15,
    pitch: 1.3,
  },
];

/** Each starter card file and the voice its character speaks in (a card carries no voice). */
export const STARTER_CARDS: ReadonlyArray<{ file: string; voice: string }> = [
  { file: 'mira-vance.json', voice: 'mira-warm' },
  { file: 'harlan-graves.json', voice: 'harlan-dry' },
  { file: 'pip-sprocket.json', voice: 'pip-quick' },
];

export const seedCardPath = (file: string): string => fileURLToPath(new URL(`./seed-cards/${file}`, import.meta.url));

/** The starter characters, each imported from its card file. */
export function starterCharacters(): CharacterImport[] {
  return STARTER_CARDS.map(({ file, voice }) => ({ ...cardFromFile(readFileSync(seedCardPath(file)), 'json'), voice, is_active: true }));
}
