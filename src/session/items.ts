// The items that flow between a connection's pipeline stages (the plan's TTSSentence and
// AudioChunk). Every item carries its message and the generation it was made in: an interrupt
// bumps the session's generation, and any stage drops items of an older one.

import type { VoiceDefinition, VoiceStyle } from '../protocol.ts';
import type { CharacterNarration } from '../speech/narration.ts';

/** Who is speaking a message, and with which stored voice (a voices-table key, or null). */
export interface Speaker {
  character_id: string;
  character_name: string;
  message_id: string;
  voice: string | null;
  /** An unsaved voice to speak with instead of the stored one (a preview of the editor's settings). */
  definition?: VoiceDefinition;
  /** The character's own delivery style, over its voice's (not the narrator's). */
  style?: VoiceStyle | null;
  /** The character's narration settings (null fields = NARRATION / NARRATOR_VOICE); absent = speak all. */
  narration?: CharacterNarration;
}

/** Turn → Speech: a sentence to synthesize, or the end of a message's sentences. */
export type SentenceItem =
  // turn: which turn (or voice preview) it belongs to; speech failures are counted per turn.
  | { kind: 'sentence'; speaker: Speaker; generation: number; turn: number; sentence_index: number; text: string }
  | { kind: 'end'; speaker: Speaker; generation: number };

/** Speech → AudioStreamer: PCM16 LE mono at sample_rate, or the end of a message's audio. */
export type AudioItem =
  | {
      kind: 'chunk';
      speaker: Speaker;
      generation: number;
      sample_rate: number;
      sentence_index: number;
      chunk_index: number;
      pcm: Buffer;
    }
  | { kind: 'end'; speaker: Speaker; generation: number };
