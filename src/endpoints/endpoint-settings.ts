// EndpointSettings: the LLM, TTS and STT endpoints as the connection panel sets them. Saved
// settings live in the endpoint_settings table (the API key sealed by SecretBox) and win over the
// environment's; deleting them goes back to the environment. Every change is applied at once to
// the live engines (the shared Llm object, the registry's swappable openai TTS engine, the
// swappable STT engine), so new turns use it without a restart. The client only ever sees a view
// in which the key is masked to its last 4 characters.
import { eq } from 'drizzle-orm';
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import type { Database } from '../db/client.ts';
import { endpointSettings } from '../db/schema.ts';
import { createLlm, type Llm } from '../llm/chat.ts';
import type { Capabilities, EndpointDraft, EndpointKind, EndpointSettingsBody, EndpointsView, EndpointView, LlmState } from '../protocol.ts';
import type { SessionDeps } from '../session/router.ts';
import { createOpenAiTtsEngine } from '../speech/engines/openai.ts';
import { TtsRegistry } from '../speech/registry.ts';
import { createOpenAiSttEngine } from '../transcribe/engines/openai.ts';
import { loadVad } from '../transcribe/vad.ts';
import { probeLlm } from './endpoint-probe.ts';
import type { SecretBox } from './secret-box.ts';
import { SwappableStt, SwappableTts } from './swappable-engines.ts';

/** One endpoint as the engines are built from it. */
export interface Endpoint {
  baseUrl: string;
  model: string;
  voice: string | null;
  apiKey: string | undefined;
}

type Row = typeof endpointSettings.$inferSelect;
/** A saved row with its key opened once (the sealed form stays in the database only). */
interface Saved {
  row: Row;
  apiKey: string | undefined;
  /** A key is stored but this server's secrets key cannot open it. */
  unreadable: boolean;
}

/** Where speech input lives: the app's deps (new sessions read `stt` when they open). */
export interface SttHost {
  stt: SessionDeps['stt'];
}

export interface EndpointSettingsDeps {
  database: Database;
  config: Config;
  box: SecretBox;
  llm: Llm;
  tts: SessionDeps['tts'];
  sttHost: SttHost;
  logger: Logger;
}

export class EndpointSettings {
  private readonly saved = new Map<EndpointKind, Saved>();
  private llmState: LlmState = 'unknown';
  private readonly listeners = new Set<(caps: Capabilities) => void>();

  /** Called with the capabilities whenever they change (the app pushes them to every session). */
  onChange(listener: (caps: Capabilities) => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** Each session compares with what it was told, so listeners may hear the same capabilities twice. */
  private changed(): void {
    const caps = this.capabilities();
    for (const listener of this.listeners) listener(caps);
  }

  /** Speech input as the environment set it up, for when saved settings are deleted. */
  private readonly environmentStt: SessionDeps['stt'];

  constructor(private readonly deps: EndpointSettingsDeps) {
    this.environmentStt = deps.sttHost.stt;
  }

  /** Reads what was saved, applies it to the engines, then checks the LLM once (not awaited by callers that must not wait). */
  async load(): Promise<void> {
    for (const row of await this.deps.database.db.select().from(endpointSettings)) this.saved.set(row.kind, await this.opened(row));
    for (const kind of this.saved.keys()) await this.apply(kind);
    if (!this.saved.has('llm')) this.recheckLlm(); // applyLlm checks a saved one
    this.deps.logger.info({ saved: [...this.saved.keys()], secrets: this.deps.box.source }, 'endpoint settings');
  }

  /** The endpoint in use: the saved one, else the environment's. */
  current(kind: EndpointKind): Endpoint {
    const saved = this.saved.get(kind);
    if (saved) return { baseUrl: saved.row.base_url, model: saved.row.model, voice: saved.row.voice, apiKey: saved.apiKey };
    return this.fromEnvironment(kind);
  }

  /** A draft (test, model list) over the current endpoint: api_key absent = the current key, null/"" = none. */
  draft(kind: EndpointKind, draft: EndpointDraft): Endpoint {
    const now = this.current(kind);
    return {
      baseUrl: draft.base_url ?? now.baseUrl,
      model: draft.model ?? now.model,
      voice: draft.voice === undefined ? now.voice : draft.voice,
      apiKey: draft.api_key === undefined ? now.apiKey : draft.api_key || undefined,
    };
  }

  async save(kind: EndpointKind, body: EndpointSettingsBody): Promise<void> {
    const next = this.draft(kind, body);
    const values = {
      kind,
      base_url: next.baseUrl,
      model: next.model,
      voice: kind === 'tts' ? next.voice : null,
      api_key_encrypted: next.apiKey === undefined ? null : await this.deps.box.seal(next.apiKey),
      updated_at: new Date(),
    };
    const [row] = await this.deps.database.db
      .insert(endpointSettings)
      .values(values)
      .onConflictDoUpdate({ target: endpointSettings.kind, set: values })
      .returning();
    if (row) this.saved.set(kind, { row, apiKey: next.apiKey, unreadable: false });
    await this.apply(kind);
  }

  /** Forgets the saved settings: the environment's apply again. */
  async reset(kind: EndpointKind): Promise<void> {
    await this.deps.database.db.delete(endpointSettings).where(eq(endpointSettings.kind, kind));
    this.saved.delete(kind);
    await this.apply(kind);
  }

  /** What the server can do now: the `session` greeting and the `capabilities` message carry it. */
  capabilities(): Capabilities {
    return { llm: this.llmState, speech_input: this.deps.sttHost.stt !== undefined, speech_output: this.deps.tts !== undefined };
  }

  /** Asks the LLM endpoint in use whether it answers (GET /models), and keeps the answer for capabilities(). */
  async checkLlm(): Promise<LlmState> {
    const llm = this.deps.llm;
    if (!llm.client) return (this.llmState = 'not_configured');
    const before = llm.client;
    const state = await probeLlm(this.current('llm'));
    if (llm.client === before) this.llmState = state; // a save while it ran has checked again
    this.changed();
    return state;
  }

  view(): EndpointsView {
    return { llm: this.viewOf('llm'), tts: this.viewOf('tts'), stt: this.viewOf('stt'), capabilities: this.capabilities() };
  }

  private viewOf(kind: EndpointKind): EndpointView {
    const e = this.current(kind);
    const saved = this.saved.get(kind);
    const unreadable = saved?.unreadable === true;
    return {
      kind,
      base_url: e.baseUrl,
      model: e.model,
      voice: kind === 'tts' ? e.voice : null,
      api_key: { set: e.apiKey !== undefined, last4: e.apiKey === undefined ? null : maskKey(e.apiKey) },
      source: saved ? 'saved' : 'environment',
      active: this.active(kind),
      note: unreadable ? 'The saved API key cannot be read with this server\'s secrets key (SECRETS_KEY or DATA_DIR/secrets.key changed): enter it again.' : this.note(kind),
    };
  }

  private active(kind: EndpointKind): boolean {
    if (kind === 'llm') return this.deps.llm.client !== undefined;
    if (kind === 'tts') return this.openAiTts() !== undefined;
    return this.deps.sttHost.stt !== undefined;
  }

  private note(kind: EndpointKind): string | null {
    if (kind === 'llm' && !this.deps.llm.client) return 'No API key: this endpoint needs one.';
    if (kind === 'tts' && !this.deps.tts) return 'Speech output is turned off on this server (TTS_ENGINE=none).';
    if (kind === 'tts' && !(this.deps.tts?.engine instanceof TtsRegistry)) return 'This server\'s speech engine cannot be changed while it runs.';
    if (kind === 'tts' && this.deps.config.tts.engine !== 'openai') return `Voices that name the openai engine speak through this endpoint; the others use ${this.deps.config.tts.engine}.`;
    return null;
  }

  private fromEnvironment(kind: EndpointKind): Endpoint {
    const c = this.deps.config;
    if (kind === 'llm') return { baseUrl: c.llm.baseUrl, model: c.llm.model, voice: null, apiKey: c.llm.apiKey };
    if (kind === 'tts') return { baseUrl: c.tts.baseUrl, model: c.tts.model, voice: c.tts.defaultVoice ?? null, apiKey: c.tts.apiKey };
    return { baseUrl: c.stt.baseUrl, model: c.stt.model, voice: null, apiKey: c.stt.apiKey };
  }

  private async opened(row: Row): Promise<Saved> {
    const apiKey = row.api_key_encrypted == null ? undefined : await this.deps.box.open(row.api_key_encrypted);
    return { row, apiKey, unreadable: row.api_key_encrypted != null && apiKey === undefined };
  }

  private openAiTts(): SwappableTts | undefined {
    const registry = this.deps.tts?.engine;
    const engine = registry instanceof TtsRegistry ? registry.get('openai') : undefined;
    return engine instanceof SwappableTts ? engine : undefined;
  }

  /** Puts the current settings of one kind into the live engines. */
  private async apply(kind: EndpointKind): Promise<void> {
    const e = this.current(kind);
    if (kind === 'llm') await this.applyLlm(e);
    else if (kind === 'tts') await this.applyTts(e);
    else await this.applyStt(e);
    this.changed();
  }

  private async applyLlm(e: Endpoint): Promise<void> {
    // The one Llm object every session holds: its fields change in place.
    Object.assign(this.deps.llm, createLlm({ ...this.deps.config.llm, baseUrl: e.baseUrl, apiKey: e.apiKey, model: e.model }));
    this.llmState = this.deps.llm.client ? 'unknown' : 'not_configured';
    this.recheckLlm();
  }

  private recheckLlm(): void {
    void this.checkLlm().catch((err: unknown) => this.deps.logger.warn({ err }, 'checking the LLM failed'));
  }

  private async applyTts(e: Endpoint): Promise<void> {
    const registry = this.deps.tts?.engine;
    if (!(registry instanceof TtsRegistry)) return;
    const t = this.deps.config.tts;
    const engine = createOpenAiTtsEngine({ timeoutMs: t.timeoutMs, firstByteTimeoutMs: t.firstByteTimeoutMs, baseUrl: e.baseUrl, apiKey: e.apiKey, model: e.model, sampleRate: t.sampleRate, defaultVoice: e.voice ?? undefined, referenceAudio: t.referenceAudio });
    const live = this.openAiTts();
    if (live) live.swap(engine);
    else registry.add(new SwappableTts(engine));
  }

  private async applyStt(e: Endpoint): Promise<void> {
    const c = this.deps.config.stt;
    // Nothing saved: speech input as the environment set it up (perhaps none, perhaps a local whisper).
    if (!this.saved.has('stt')) return void (this.deps.sttHost.stt = this.environmentStt);
    const engine = createOpenAiSttEngine({ baseUrl: e.baseUrl, apiKey: e.apiKey, model: e.model, language: c.language, timeoutMs: c.timeoutMs });
    const host = this.deps.sttHost;
    if (host.stt?.engine instanceof SwappableStt) return host.stt.engine.swap(engine);
    if (host.stt) {
      // An engine from the environment that is not swappable (tests hand one in): replace it for new sessions.
      host.stt = { ...host.stt, engine: new SwappableStt(engine) };
      return;
    }
    // Speech input was off: sessions opened from now on have it.
    host.stt = { engine: new SwappableStt(engine), vad: await loadVad(), config: c };
  }
}

/** The last 4 characters of a key, and only when the key is long enough that they give little away. */
export function maskKey(key: string): string {
  return key.length >= 12 ? key.slice(-4) : '';
}
