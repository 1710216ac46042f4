// What the server's error codes mean, in plain words: the one table every toast, bubble and
// notice takes its wording from, so nothing a person reads says "payload", "LLM" or a code.
// `server: true` marks codes whose own message is written for the user (it names the thing
// not found, the size limit …) and is shown under the title; the others show `text`.
import type { ErrorCode } from './types.ts';

export interface ErrorWords {
  title: string;
  text: string;
  /** Show the server's message instead of `text` (it is already in plain words). */
  server?: boolean;
}

const ERROR_WORDS: ReadonlyMap<ErrorCode, ErrorWords> = new Map<ErrorCode, ErrorWords>([
  ['bad_json', { title: 'Something went wrong', text: 'The page sent something the server could not read. Reload the page and try again.' }],
  ['unknown_type', { title: 'Something went wrong', text: 'The page and the server do not understand each other. Reload the page.' }],
  ['invalid_payload', { title: 'Not accepted', text: 'The server did not accept that change. Check what you entered and try again.' }],
  ['message_too_large', { title: 'Too long', text: 'That is too long to send. Shorten it and try again.' }],
  ['bad_audio', { title: 'Microphone problem', text: 'The sound from your microphone could not be used.' }],
  ['llm_not_configured', { title: 'No reply possible', text: 'No language model is set up on this server, so the characters cannot answer yet.' }],
  ['llm_error', { title: 'The reply failed', text: 'The language model did not answer properly, so the reply stopped.' }],
  ['tts_error', { title: 'Could not speak', text: 'Part of the reply could not be spoken; it is shown as text.' }],
  ['voice_fallback', { title: 'Another voice used', text: 'The chosen voice is not available, so a default voice is speaking.' }],
  ['stt_error', { title: 'Speech input failed', text: 'What you said could not be turned into text. Try again or type it.' }],
  ['stt_not_configured', { title: 'Speech input is not available', text: 'This server cannot listen: type your message instead.' }],
  ['storage_error', { title: 'Saving is delayed', text: 'The conversation could not be saved just now; it will be saved as soon as possible.' }],
  ['not_found', { title: 'Not found', text: 'That no longer exists.', server: true }],
  ['rate_limited', { title: 'Slow down', text: 'Too many requests at once. Wait a moment and try again.' }],
  ['internal', { title: 'Something went wrong', text: 'The server could not do that. Try again.' }],
]);

const UNKNOWN: ErrorWords = { title: 'Something went wrong', text: 'The server could not do that. Try again.' };

/** The title and text for an error code (and, when it is in plain words already, the server's message). */
export function errorWords(code: ErrorCode, serverMessage?: string): ErrorWords {
  const words = ERROR_WORDS.get(code) ?? UNKNOWN;
  return words.server && serverMessage ? { ...words, text: serverMessage } : words;
}

/** Why a reply ended early, as its bubble says it. */
export type ReplyCut = 'failed' | 'stopped' | 'connection' | 'speech';
export const REPLY_CUT_WORDS: ReadonlyMap<ReplyCut, { badge: string; reason: string }> = new Map<ReplyCut, { badge: string; reason: string }>([
  ['failed', { badge: 'failed', reason: 'The language model stopped answering.' }],
  ['stopped', { badge: 'interrupted', reason: 'Stopped before the end.' }],
  ['connection', { badge: 'interrupted', reason: 'The connection was lost during the reply.' }],
  ['speech', { badge: 'not all spoken', reason: 'Part of this reply could not be spoken.' }],
]);
