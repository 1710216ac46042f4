// JSON from the wire (WebSocket frames, REST bodies). JSON.parse accepts any depth, but a
// value nested thousands deep later overflows the stack of whatever walks it (JSON.stringify
// when it is stored, zod, the logger); such text is refused here, before it is parsed.

/** A JSON object (not an array, not null). */
export const isJsonObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Deeper than any record of the protocol needs (character books, audio tokens included). */
export const MAX_JSON_DEPTH = 64;

export class JsonInputError extends Error {
  override name = 'JsonInputError';
  constructor(
    message: string,
    /** The text is valid JSON, only nested too deep. */
    readonly tooDeep = false,
  ) {
    super(message);
  }
}

/** JSON.parse, refusing text nested deeper than `maxDepth`; throws JsonInputError with the reason. */
export function parseJson(text: string, maxDepth = MAX_JSON_DEPTH): unknown {
  const depth = nestingDepth(text, maxDepth);
  if (depth > maxDepth) throw new JsonInputError(`it is nested deeper than ${maxDepth} levels`, true);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new JsonInputError(error instanceof Error ? error.message : String(error));
  }
}

/** The deepest bracket nesting outside strings, counted up to `stopAbove` + 1. */
function nestingDepth(text: string, stopAbove: number): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > deepest && (deepest = depth) > stopAbove) return deepest;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return deepest;
}

/**
 * A JSON file's bytes (an uploaded card or lorebook): UTF-8 text that is not blank and parses
 * (depth-checked). Throws JsonInputError saying which of those it is not ("it is empty", …).
 */
export function parseJsonFile(bytes: Uint8Array): unknown {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new JsonInputError('it is not UTF-8 text');
  }
  if (text.trim() === '') throw new JsonInputError('it is empty');
  try {
    return parseJson(text);
  } catch (error) {
    throw new JsonInputError(`it is not valid JSON: ${(error as JsonInputError).message}`, (error as JsonInputError).tooDeep);
  }
}
