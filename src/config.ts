// Environment → typed, validated configuration. Every variable is documented in
// docs/configuration.md; a bad value stops start-up with one clear line per problem.
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { isLoopbackHost, parseAllowedHost, parseAllowedOrigin } from './http/hosts.ts';
import type { RateLimits } from './session/rate-limiter.ts';
import { narrationModes } from './protocol.ts';
import { type ReferenceAudioMode, referenceAudioModes } from './speech/engines/reference-protocols.ts';
import type { NarrationDefaults } from './speech/narration.ts';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'])
  .transform((v) => ['true', '1', 'yes', 'on'].includes(v));
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const num = (min: number, max: number) => z.coerce.number().min(min).max(max);
const url = z.url({ protocol: /^https?$/ });
const emptyToUndefined = (v: unknown) => (v === '' ? undefined : v);
type Parsed = { ok: true; value: string } | { ok: false; error: string };
/** A comma list, each entry checked and put in its normal form by `parse`. */
const list = (parse: (entry: string) => Parsed) =>
  z
    .string()
    .default('')
    .transform((text, ctx) =>
      text
        .split(',')
        .map((entry) => entry.trim())
        .filter((entry) => entry !== '')
        .flatMap((entry) => {
          const result = parse(entry);
          if (result.ok) return [result.value];
          ctx.addIssue({ code: 'custom', message: result.error });
          return [];
        }),
    );

const envSchema = z.object({
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: int(0, 65535).default(8000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  DATA_DIR: z.string().min(1).default('./data'),
  DATABASE_URL: z.preprocess(emptyToUndefined, z.url({ protocol: /^postgres(ql)?$/ }).optional()),
  WEB_DIR: z.string().min(1).default('./web/dist'),
  SEED_STARTER_CAST: bool.default(true),
  SHUTDOWN_TIMEOUT_MS: int(100, 600_000).default(10_000),

  LLM_BASE_URL: url.default('https://openrouter.ai/api/v1'),
  LLM_API_KEY: z.preprocess(emptyToUndefined, z.string().optional()),
  OPENROUTER_API_KEY: z.preprocess(emptyToUndefined, z.string().optional()),
  LLM_MODEL: z.string().min(1).default('meta-llama/llama-3.1-8b-instruct'),
  LLM_TIMEOUT_MS: int(100, 600_000).default(30_000),
  LLM_MAX_TOKENS: int(1, 32_768).default(400),
  HISTORY_TOKEN_BUDGET: int(100, 1_000_000).default(6000),
  USER_NAME: z.string().trim().min(1).max(64).default('User'),
  REPLY_SEED: z.preprocess(emptyToUndefined, int(0, 2 ** 32 - 1).optional()),

  MAX_MESSAGE_BYTES: int(1024, 64 * 1024 * 1024).default(2 * 1024 * 1024),

  // Limits (docs/configuration.md, "Limits")
  MAX_SESSIONS: int(1, 100_000).default(200),
  WS_PING_INTERVAL_MS: int(10, 3_600_000).default(30_000),
  SLOW_CLIENT_TIMEOUT_MS: int(100, 3_600_000).default(30_000),
  RATE_LIMIT_WINDOW_MS: int(100, 3_600_000).default(10_000),
  RATE_LIMIT_TURNS: int(1, 100_000).default(20),
  RATE_LIMIT_REQUESTS: int(1, 100_000).default(100),

  // Access (docs/security.md)
  AUTH_TOKEN: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .min(16, 'must be at least 16 characters (e.g. the output of openssl rand -hex 32)')
      .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces')
      .optional(),
  ),
  ALLOW_UNAUTHENTICATED: bool.default(false),
  // Encrypts the API keys saved from the connection panel (32 bytes: 64 hex characters or base64); unset: DATA_DIR/secrets.key.
  SECRETS_KEY: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .transform((text, ctx) => {
        const key = /^[0-9a-f]{64}$/i.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64');
        if (key.length === 32) return key;
        ctx.addIssue({ code: 'custom', message: 'must be 32 bytes: 64 hex characters or base64 (e.g. the output of openssl rand -hex 32)' });
        return z.NEVER;
      })
      .optional(),
  ),
  ALLOWED_ORIGINS: list(parseAllowedOrigin),
  ALLOWED_HOSTS: list(parseAllowedHost),

  // The default engine (voices that name none); every engine configured below is live besides it.
  TTS_ENGINE: z.enum(['espeak', 'openai', 'higgs', 'higgs-v2', 'none']).default('espeak'),
  // Set: the openai engine is live (whatever TTS_ENGINE); unset with TTS_ENGINE=openai: Kokoro-FastAPI's default.
  TTS_BASE_URL: z.preprocess(emptyToUndefined, url.optional()),
  // How the openai engine sends a clone voice's reference clip (docs/engines.md); none = it has no clone voices.
  TTS_REFERENCE_AUDIO: z.enum(referenceAudioModes).default('none'),
  // Higgs Audio v3 (Boson's speech API or a self-hosted server speaking it): live when its URL is set.
  HIGGS_BASE_URL: z.preprocess(emptyToUndefined, url.optional()),
  HIGGS_API_KEY: z.preprocess(emptyToUndefined, z.string().optional()),
  HIGGS_MODEL: z.string().min(1).default('higgs-audio-v3-tts'),
  HIGGS_DEFAULT_VOICE: z.string().min(1).default('default'),
  // Clone voices registered once as custom voices (POST /v1/voices) rather than sent with every sentence.
  HIGGS_CUSTOM_VOICES: bool.default(true),
  // Higgs Audio v2 on boson-ai's vLLM server: live when its URL is set.
  HIGGS_V2_BASE_URL: z.preprocess(emptyToUndefined, url.optional()),
  HIGGS_V2_API_KEY: z.preprocess(emptyToUndefined, z.string().optional()),
  HIGGS_V2_MODEL: z.string().min(1).default('higgs-audio-v2-generation-3B-base'),
  HIGGS_V2_DEFAULT_VOICE: z.string().min(1).default('en_woman'),
  TTS_API_KEY: z.preprocess(emptyToUndefined, z.string().optional()),
  TTS_MODEL: z.string().min(1).default('tts-1'),
  TTS_SAMPLE_RATE: int(8000, 48_000).default(24_000),
  TTS_DEFAULT_VOICE: z.string().min(1).optional(),
  TTS_TIMEOUT_MS: int(100, 600_000).default(15_000),
  TTS_FIRST_BYTE_TIMEOUT_MS: int(100, 600_000).default(5000),
  // One core stays free for the event loop: synthesis bursts must never starve it.
  ESPEAK_WORKERS: int(1, 16).default(Math.max(1, Math.min(4, availableParallelism() - 1))),
  AUDIO_LEAD_MS: int(0, 600_000).default(1500),
  // Sentences synthesized ahead of the one being spoken, so none waits for its first byte.
  TTS_LOOKAHEAD: int(0, 8).default(2),
  // What of a reply is spoken, for characters whose `narration` is null (src/speech/narration.ts).
  NARRATION: z.enum(narrationModes).default('all'),
  // The stored voice (voices-table key) narration speaks in, for characters without a narrator_voice.
  NARRATOR_VOICE: z.preprocess(emptyToUndefined, z.string().min(1).optional()),
  // The one rate every engine's audio is resampled to before it leaves (the original client assumes 24 kHz).
  OUTPUT_SAMPLE_RATE: int(8000, 48_000).default(24_000),

  // Speech input (docs/configuration.md, "Speech input")
  STT_ENGINE: z.preprocess(emptyToUndefined, z.enum(['openai', 'whisper', 'none']).optional()),
  STT_BASE_URL: z.preprocess(emptyToUndefined, url.optional()),
  STT_API_KEY: z.preprocess(emptyToUndefined, z.string().optional()),
  STT_MODEL: z.string().min(1).default('whisper-1'),
  STT_LANGUAGE: z.preprocess(emptyToUndefined, z.string().trim().min(2).max(10).optional()),
  STT_TIMEOUT_MS: int(100, 600_000).default(10_000),
  WHISPER_MODEL_PATH: z.preprocess(emptyToUndefined, z.string().optional()),
  STT_REALTIME_INTERVAL_MS: int(0, 60_000).default(500),
  VAD_THRESHOLD: num(0.05, 0.99).default(0.5),
  VAD_NEG_THRESHOLD: z.preprocess(emptyToUndefined, num(0.01, 0.99).optional()),
  STT_MIN_SPEECH_MS: int(0, 5000).default(250),
  STT_PRE_ROLL_MS: int(0, 2000).default(300),
  STT_END_SILENCE_MS: int(100, 10_000).default(800),
  STT_END_SILENCE_MS_SHORT: int(100, 10_000).default(300),
  STT_END_SILENCE_MS_LONG: int(100, 10_000).default(1200),
  STT_MAX_UTTERANCE_MS: int(1000, 120_000).default(30_000),
  BARGE_IN: bool.default(true),
  BARGE_IN_MIN_MS: int(0, 5000).default(250),
  // A barge-in pauses the reply; with no words within this long after the user stops, it resumes (0: it interrupts at once).
  FALSE_INTERRUPT_TIMEOUT_MS: int(0, 60_000).default(1500),
  // Silence after which a preemptive reply may start on the transcript made when the user stopped.
  STT_PAUSE_MS: int(0, 5000).default(100),
  // A reply starts on that transcript before the end of the turn is decided; it is sent only once the final transcript confirms it.
  PREEMPTIVE_GENERATION: bool.default(true),
  // A user-supplied ONNX end-of-turn classifier (docs/configuration.md); unset: the transcript's punctuation decides.
  TURN_DETECTOR_MODEL: z.preprocess(emptyToUndefined, z.string().optional()),
  TURN_DETECTOR_THRESHOLD: num(0, 1).default(0.5),
});

export type Env = z.input<typeof envSchema>;

export interface Config {
  host: string;
  port: number;
  logLevel: z.infer<typeof envSchema>['LOG_LEVEL'];
  dataDir: string;
  databaseUrl: string | undefined;
  webDir: string;
  seedStarterCast: boolean;
  /** How long SIGTERM/SIGINT may take to store what is pending and close everything. */
  shutdownTimeoutMs: number;
  llm: {
    baseUrl: string;
    apiKey: string | undefined;
    model: string;
    timeoutMs: number;
    maxTokens: number;
    historyTokenBudget: number;
  };
  userName: string;
  /** Seeds every conversation's PRNG (who speaks up unaddressed): reproducible choices; absent: random. */
  replySeed: number | undefined;
  maxMessageBytes: number;
  limits: {
    maxSessions: number;
    /** A connection that has not answered one ping by the next is terminated. */
    pingIntervalMs: number;
    slowClientTimeoutMs: number;
    rate: RateLimits;
  };
  access: {
    /** Needed by every REST call and the /ws upgrade when set (docs/security.md). */
    authToken: string | undefined;
    /** Browser origins let in besides the server's own, in `URL.origin` form. */
    allowedOrigins: string[];
    /** Host names answered besides localhost, addresses and HOST (`.x` = x and subdomains, `*` = any). */
    allowedHosts: string[];
  };
  /** Encrypts stored API keys (src/endpoints/secret-box.ts); undefined: a key file in DATA_DIR. */
  secretsKey: Buffer | undefined;
  tts: {
    /** The default engine: voices that name none speak through it. */
    engine: 'espeak' | 'openai' | 'higgs' | 'higgs-v2' | 'none';
    /** The openai engine is live (TTS_ENGINE=openai or TTS_BASE_URL set). */
    openai: boolean;
    baseUrl: string;
    referenceAudio: ReferenceAudioMode;
    higgs: HiggsConfig | undefined;
    higgsV2: HiggsConfig | undefined;
    apiKey: string | undefined;
    model: string;
    sampleRate: number;
    defaultVoice: string | undefined;
    timeoutMs: number;
    /** A sentence whose audio has not started by then is skipped. */
    firstByteTimeoutMs: number;
    espeakWorkers: number;
    /** How far ahead of the client's playback audio is sent; 0 sends it as soon as it exists. */
    audioLeadMs: number;
    /** Sentences synthesized ahead of the one being spoken (0 = one at a time). */
    lookahead: number;
    /** The rate all speech audio leaves at, whatever each engine's own rate. */
    outputSampleRate: number;
  };
  /** Defaults for characters whose narration / narrator_voice is null. */
  narration: NarrationDefaults;
  stt: {
    /** `none` when nothing is configured: speech input answers with SPEECH_INPUT_NOT_CONFIGURED. */
    engine: 'openai' | 'whisper' | 'none';
    baseUrl: string;
    apiKey: string | undefined;
    model: string;
    language: string | undefined;
    timeoutMs: number;
    whisperModelPath: string | undefined;
    /** Least time between live transcriptions of an utterance; 0 = final transcripts only. */
    realtimeIntervalMs: number;
    vadThreshold: number;
    vadNegThreshold: number;
    minSpeechMs: number;
    preRollMs: number;
    endSilenceMs: number;
    endSilenceShortMs: number;
    endSilenceLongMs: number;
    maxUtteranceMs: number;
    bargeIn: boolean;
    bargeInMinMs: number;
    /** How long after the user stops a paused reply waits for words before it resumes; 0 = barge-in interrupts at once. */
    falseInterruptTimeoutMs: number;
    /** Silence after which a preemptive reply may start (on the transcript made when the user stopped). */
    pauseMs: number;
    /** Replies start on the paused transcript, held until the final transcript confirms them. */
    preemptive: boolean;
    /** An ONNX end-of-turn classifier file (src/transcribe/turn-detector.ts); undefined: the text rules. */
    turnDetectorModel: string | undefined;
    /** Its probability at or above which the turn counts as complete. */
    turnDetectorThreshold: number;
  };
}

export interface HiggsConfig {
  baseUrl: string;
  apiKey: string | undefined;
  model: string;
  defaultVoice: string;
  /** Higgs v3: register clone voices once (POST /v1/voices or /v1/audio/voices) instead of sending the clip each time. */
  customVoices: boolean;
}

/** A default engine that is not configured is a start-up error, not a silent espeak. */
function ttsProblems(e: ParsedEnv): string[] {
  const needs: Record<string, [string, unknown]> = { higgs: ['HIGGS_BASE_URL', e.HIGGS_BASE_URL], 'higgs-v2': ['HIGGS_V2_BASE_URL', e.HIGGS_V2_BASE_URL] };
  const need = Object.hasOwn(needs, e.TTS_ENGINE) ? needs[e.TTS_ENGINE] : undefined;
  return need && need[1] === undefined ? [`TTS_ENGINE=${e.TTS_ENGINE} needs ${need[0]} (the server's /v1 URL)`] : [];
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** Parses an environment (process.env by default) into a Config or throws ConfigError. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => `${i.path.join('.')}=${shownValue(String(i.path[0]), env[String(i.path[0])])}: ${i.message}`),
    );
  }
  const e = parsed.data;
  const tts = ttsProblems(e);
  if (tts.length > 0) throw new ConfigError(tts);
  return {
    host: e.HOST,
    port: e.PORT,
    logLevel: e.LOG_LEVEL,
    dataDir: e.DATA_DIR,
    databaseUrl: e.DATABASE_URL,
    webDir: e.WEB_DIR,
    seedStarterCast: e.SEED_STARTER_CAST,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    llm: {
      baseUrl: e.LLM_BASE_URL,
      apiKey: e.LLM_API_KEY ?? e.OPENROUTER_API_KEY,
      model: e.LLM_MODEL,
      timeoutMs: e.LLM_TIMEOUT_MS,
      maxTokens: e.LLM_MAX_TOKENS,
      historyTokenBudget: e.HISTORY_TOKEN_BUDGET,
    },
    userName: e.USER_NAME,
    replySeed: e.REPLY_SEED,
    maxMessageBytes: e.MAX_MESSAGE_BYTES,
    limits: {
      maxSessions: e.MAX_SESSIONS,
      pingIntervalMs: e.WS_PING_INTERVAL_MS,
      slowClientTimeoutMs: e.SLOW_CLIENT_TIMEOUT_MS,
      rate: { windowMs: e.RATE_LIMIT_WINDOW_MS, turns: e.RATE_LIMIT_TURNS, requests: e.RATE_LIMIT_REQUESTS },
    },
    access: accessConfig(e),
    secretsKey: e.SECRETS_KEY,
    tts: {
      engine: e.TTS_ENGINE,
      openai: e.TTS_ENGINE === 'openai' || e.TTS_BASE_URL !== undefined,
      baseUrl: e.TTS_BASE_URL ?? 'http://127.0.0.1:8880/v1',
      referenceAudio: e.TTS_REFERENCE_AUDIO,
      higgs: e.HIGGS_BASE_URL === undefined ? undefined : { baseUrl: e.HIGGS_BASE_URL, apiKey: e.HIGGS_API_KEY, model: e.HIGGS_MODEL, defaultVoice: e.HIGGS_DEFAULT_VOICE, customVoices: e.HIGGS_CUSTOM_VOICES },
      higgsV2: e.HIGGS_V2_BASE_URL === undefined ? undefined : { baseUrl: e.HIGGS_V2_BASE_URL, apiKey: e.HIGGS_V2_API_KEY, model: e.HIGGS_V2_MODEL, defaultVoice: e.HIGGS_V2_DEFAULT_VOICE, customVoices: false },
      apiKey: e.TTS_API_KEY,
      model: e.TTS_MODEL,
      sampleRate: e.TTS_SAMPLE_RATE,
      defaultVoice: e.TTS_DEFAULT_VOICE,
      timeoutMs: e.TTS_TIMEOUT_MS,
      firstByteTimeoutMs: e.TTS_FIRST_BYTE_TIMEOUT_MS,
      espeakWorkers: e.ESPEAK_WORKERS,
      audioLeadMs: e.AUDIO_LEAD_MS,
      lookahead: e.TTS_LOOKAHEAD,
      outputSampleRate: e.OUTPUT_SAMPLE_RATE,
    },
    narration: { mode: e.NARRATION, narratorVoice: e.NARRATOR_VOICE ?? null },
    stt: sttConfig(e),
  };
}

type ParsedEnv = z.infer<typeof envSchema>;

/** Variables whose value is a secret: a problem with one never prints it. */
const isSecretVariable = (name: string) => /(_API_KEY|_TOKEN|PASSWORD|SECRET|SECRETS_KEY)$/.test(name);

/** A bad value as the error shows it: secrets hidden, and a URL's password masked. */
function shownValue(name: string, value: string | undefined): string {
  if (value === undefined) return 'undefined';
  if (isSecretVariable(name)) return '"(hidden)"';
  return JSON.stringify(redactUrlPassword(value));
}

/** `postgres://user:secret@host/db` → `postgres://user:***@host/db`, also in text that does not parse as a URL. */
export function redactUrlPassword(text: string): string {
  return text.replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)\S*@/gi, '$1***@');
}

/** Listening beyond loopback without a token would hand every reachable machine the data. */
function accessConfig(e: ParsedEnv): Config['access'] {
  if (!isLoopbackHost(e.HOST) && e.AUTH_TOKEN === undefined && !e.ALLOW_UNAUTHENTICATED) {
    throw new ConfigError([
      `HOST=${JSON.stringify(e.HOST)} accepts connections from other machines, and AUTH_TOKEN is not set: ` +
        'set AUTH_TOKEN to a secret (e.g. AUTH_TOKEN=$(openssl rand -hex 32)), or ALLOW_UNAUTHENTICATED=true ' +
        'if something in front of Chorus already authenticates every request (docs/security.md)',
    ]);
  }
  return { authToken: e.AUTH_TOKEN, allowedOrigins: e.ALLOWED_ORIGINS, allowedHosts: e.ALLOWED_HOSTS };
}

/** STT_ENGINE when set; else the engine whose settings are present (a model file, a server), else none. */
function sttEngine(e: ParsedEnv): Config['stt']['engine'] {
  if (e.STT_ENGINE) return e.STT_ENGINE;
  if (e.WHISPER_MODEL_PATH) return 'whisper';
  return e.STT_BASE_URL || e.STT_API_KEY ? 'openai' : 'none';
}

function sttConfig(e: ParsedEnv): Config['stt'] {
  const vadNegThreshold = e.VAD_NEG_THRESHOLD ?? Math.max(0.01, e.VAD_THRESHOLD - 0.15);
  const problems = [
    ...(vadNegThreshold > e.VAD_THRESHOLD ? [`VAD_NEG_THRESHOLD=${vadNegThreshold}: must not be above VAD_THRESHOLD (${e.VAD_THRESHOLD})`] : []),
    ...(e.STT_END_SILENCE_MS_SHORT > e.STT_END_SILENCE_MS ? [`STT_END_SILENCE_MS_SHORT=${e.STT_END_SILENCE_MS_SHORT}: must not be above STT_END_SILENCE_MS (${e.STT_END_SILENCE_MS})`] : []),
    ...(e.STT_END_SILENCE_MS_LONG < e.STT_END_SILENCE_MS ? [`STT_END_SILENCE_MS_LONG=${e.STT_END_SILENCE_MS_LONG}: must not be below STT_END_SILENCE_MS (${e.STT_END_SILENCE_MS})`] : []),
    // A pause as long as the shortest end of turn would be no pause at all: the utterance would end first.
    ...(e.STT_PAUSE_MS >= e.STT_END_SILENCE_MS_SHORT ? [`STT_PAUSE_MS=${e.STT_PAUSE_MS}: must be below STT_END_SILENCE_MS_SHORT (${e.STT_END_SILENCE_MS_SHORT})`] : []),
  ];
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    engine: sttEngine(e),
    baseUrl: e.STT_BASE_URL ?? 'https://api.openai.com/v1',
    apiKey: e.STT_API_KEY,
    model: e.STT_MODEL,
    language: e.STT_LANGUAGE,
    timeoutMs: e.STT_TIMEOUT_MS,
    whisperModelPath: e.WHISPER_MODEL_PATH,
    realtimeIntervalMs: e.STT_REALTIME_INTERVAL_MS,
    vadThreshold: e.VAD_THRESHOLD,
    vadNegThreshold,
    minSpeechMs: e.STT_MIN_SPEECH_MS,
    preRollMs: e.STT_PRE_ROLL_MS,
    endSilenceMs: e.STT_END_SILENCE_MS,
    endSilenceShortMs: e.STT_END_SILENCE_MS_SHORT,
    endSilenceLongMs: e.STT_END_SILENCE_MS_LONG,
    maxUtteranceMs: e.STT_MAX_UTTERANCE_MS,
    bargeIn: e.BARGE_IN,
    bargeInMinMs: e.BARGE_IN_MIN_MS,
    falseInterruptTimeoutMs: e.FALSE_INTERRUPT_TIMEOUT_MS,
    pauseMs: e.STT_PAUSE_MS,
    preemptive: e.PREEMPTIVE_GENERATION,
    turnDetectorModel: e.TURN_DETECTOR_MODEL,
    turnDetectorThreshold: e.TURN_DETECTOR_THRESHOLD,
  };
}
