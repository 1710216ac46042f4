// Reference clips as the base64 text engines send them: encoded once per clip, not per sentence.

/** Each clip's WAV as base64, made once per clip (a clip is immutable: its id is its content's hash). */
export class Base64Clips {
  private readonly cache = new Map<string, string>();

  of(clip: { id: string; wav: Buffer }): string {
    let encoded = this.cache.get(clip.id);
    if (encoded === undefined) {
      encoded = clip.wav.toString('base64');
      if (this.cache.size >= 64) this.cache.delete(this.cache.keys().next().value as string); // oldest out
      this.cache.set(clip.id, encoded);
    }
    return encoded;
  }
}
