// Strips the speaker wrappers a model imitates from a streamed reply ("<Ada>…</Ada>",
// "Ada:", "**Ada:**", "[Ada]:") so the client and the TTS see only what the character says.
// Streaming-safe: it holds back only the few characters that could still become a wrapper.

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export class ReplyCleaner {
  private readonly prefixes: string[];
  private readonly tag: RegExp;
  private readonly tagStarts: string[];
  private atStart = true;
  private held = '';

  constructor(names: string[]) {
    const all = [...new Set(names.map((n) => n.trim()).filter(Boolean))];
    this.prefixes = all.flatMap((n) => [`<${n}>`, `${n}:`, `**${n}:**`, `**${n}**:`, `[${n}]:`]).map((p) => p.toLowerCase());
    this.tagStarts = all.flatMap((n) => [`<${n}>`, `</${n}>`]).map((p) => p.toLowerCase());
    this.tag = new RegExp(`</?(?:${all.map(escape).join('|')})>`, 'giu');
  }

  /** Feeds one delta; returns the text safe to show now (possibly ''). */
  push(delta: string): string {
    if (!this.atStart && this.held === '' && !delta.includes('<')) return delta; // the per-token fast path
    this.held += delta;
    if (this.atStart && !this.resolveStart()) return '';
    return this.releaseBody(false);
  }

  /** End of reply: whatever is still held, cleaned. */
  flush(): string {
    this.atStart = false;
    return this.releaseBody(true);
  }

  /** Drops a leading wrapper once it is complete; false while the start is still undecided. */
  private resolveStart(): boolean {
    const head = this.held.trimStart().toLowerCase();
    if (head === '') return false;
    const whole = this.prefixes.find((p) => head.startsWith(p));
    if (whole) {
      this.held = this.held.trimStart().slice(whole.length).trimStart();
      if (this.held === '') return false; // the reply itself has not begun yet
    } else if (this.prefixes.some((p) => p.startsWith(head))) {
      return false;
    }
    this.atStart = false;
    this.held = this.held.trimStart(); // a reply does not begin with white space
    return true;
  }

  /** Removes complete tags; keeps back a trailing "<…" that may still become one. */
  private releaseBody(final: boolean): string {
    let text = this.held.replace(this.tag, '');
    this.held = '';
    if (!final) {
      const lt = text.lastIndexOf('<');
      if (lt >= 0) {
        const tail = text.slice(lt).toLowerCase();
        if (this.tagStarts.some((t) => t.startsWith(tail))) {
          this.held = text.slice(lt);
          text = text.slice(0, lt);
        }
      }
    }
    return text;
  }
}
