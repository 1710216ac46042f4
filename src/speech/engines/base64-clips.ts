// Reference clips as the base64 text engines send them: encoded once per clip (and form), not per sentence.

/** Each clip's WAV as base64 (optionally as a data URI), made once per clip (a clip is immutable: its id is its content's hash). */
export class Base64Clips {
  private readonly cache = new Map<string, string>();

  /** Plain base64, or with `prefix` in front (e.g. `data:audio/wav;base64,`). */
  of(clip: { id: string; wav: Buffer }, prefix = ''): string {
    const key = `${prefix}${clip.id}`;
    let encoded = this.cache.get(key);
    if (encoded === undefined) {
      encoded = prefix + clip.wav.toString('base64');
      if (this.cache.size >= 64) this.cache.delete(this.cache.keys().next().value as string); // oldest out
      this.cache.set(key, encoded);
    }
    return encoded;
  }
}
