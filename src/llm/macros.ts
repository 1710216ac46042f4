// SillyTavern's common macros in character text: `{{char}}`, `{{user}}`, `{{original}}`, `{{time}}`,
// `{{date}}`, `{{weekday}}`, `{{random:a,b}}` (or `{{random::a::b}}`), `{{newline}}`, `{{trim}}`,
// `{{noop}}` and the legacy `<USER>` / `<BOT>`. Names are case-insensitive, as in SillyTavern;
// unknown macros are left as written. One pass: a replacement is never itself expanded, so a
// name such as "{{user}}" stays literal.

export interface MacroContext {
  char: string;
  user: string;
  /** What `{{original}}` stands for (Chorus's default instruction in the system prompt). */
  original: string;
  now: Date;
  /** [0, 1), as Math.random; injectable so tests can pick. */
  random: () => number;
}

type Macro = (ctx: MacroContext, arg: string) => string;

/** `{{random:a,b}}` splits at commas, `{{random::a::b}}` at `::` (so options may hold commas). */
const options = (arg: string) => (arg.startsWith(':') ? arg.slice(1).split('::') : arg.split(','));
const pick = (ctx: MacroContext, choices: string[]) => choices[Math.min(choices.length - 1, Math.floor(ctx.random() * choices.length))] ?? '';

// The server's clock and time zone: Chorus runs beside its user. SillyTavern's formats (LT, LL, dddd).
const MACROS = new Map<string, Macro>([
  ['char', (c) => c.char],
  ['user', (c) => c.user],
  ['original', (c) => c.original],
  ['newline', () => '\n'],
  ['noop', () => ''],
  ['time', (c) => c.now.toLocaleTimeString('en-US', { hour: 'numeric', minute: '2-digit' })],
  ['date', (c) => c.now.toLocaleDateString('en-US', { year: 'numeric', month: 'long', day: 'numeric' })],
  ['weekday', (c) => c.now.toLocaleDateString('en-US', { weekday: 'long' })],
  ['random', (c, arg) => pick(c, options(arg))],
]);
const LEGACY = new Map<string, string>([
  ['user', 'user'],
  ['bot', 'char'],
]);

/** `{{trim}}` takes the line breaks around it with it. */
const TRIM = /(?:\r?\n)*\{\{trim\}\}(?:\r?\n)*/gi;
const MACRO = /\{\{([^{}]*)\}\}|<(USER|BOT)>/gi;

/** `{{name}}` or `{{name:argument}}`; a legacy `<USER>` / `<BOT>` is its macro. */
function expandOne(ctx: MacroContext, whole: string, inner: string | undefined, legacy: string | undefined): string {
  const body = legacy !== undefined ? (LEGACY.get(legacy.toLowerCase()) ?? '') : (inner ?? '');
  const colon = body.indexOf(':');
  const macro = MACROS.get((colon < 0 ? body : body.slice(0, colon)).trim().toLowerCase());
  return macro ? macro(ctx, colon < 0 ? '' : body.slice(colon + 1)) : whole;
}

export function expandMacros(text: string, ctx: MacroContext): string {
  if (!text.includes('{{') && !text.includes('<')) return text;
  return text.replace(TRIM, '').replace(MACRO, (whole, inner: string | undefined, legacy: string | undefined) => expandOne(ctx, whole, inner, legacy));
}
