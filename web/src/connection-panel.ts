// The connection panel (docs/client.md, "Connection"): the language model, speech output and
// speech input endpoints the server uses, set from the app. Each section has the address, the
// API key (the server only ever shows its last 4 characters; a blank box keeps the saved key),
// the model (picked from the endpoint's own /models list, or typed), a "Test connection" that
// runs one tiny real request and says what happened in plain words, and Save, which the server
// applies at once. Also the first-screen notice shown when the server has no working language
// model, which leads here instead of letting the first message fail.
import { api } from './api.ts';
import { h, icon, replace } from './dom.ts';
import type { Capabilities, EndpointDraft, EndpointKind, EndpointsView, EndpointView, LlmState } from './types.ts';
import { describeError, field, openPanel, type Panel, toast } from './ui.ts';

const SECTIONS: ReadonlyArray<{ kind: EndpointKind; title: string; about: string; modelHint: string }> = [
  { kind: 'llm', title: 'Language model', about: 'Writes the characters’ replies. Any OpenAI-compatible server: OpenRouter, OpenAI, Ollama, llama.cpp, vLLM, LM Studio.', modelHint: 'Pick one the server offers, or type its name.' },
  { kind: 'tts', title: 'Speech output', about: 'Speaks the replies: an OpenAI-compatible speech server (Kokoro, speaches, OpenAI).', modelHint: 'The speech model, e.g. tts-1 or kokoro.' },
  { kind: 'stt', title: 'Speech input', about: 'Turns what you say into text: an OpenAI-compatible transcription server (speaches, whisper.cpp, Groq, OpenAI).', modelHint: 'The transcription model, e.g. whisper-1.' },
];

/** What the first screen says for each state of the language model that is not fine. */
const LLM_PROBLEMS: ReadonlyMap<LlmState, string> = new Map([
  ['not_configured', 'No language model is connected yet, so the characters cannot reply.'],
  ['unreachable', 'The language model this server uses is not answering, so the characters cannot reply.'],
  ['rejected', 'The language model refused this server’s API key, so the characters cannot reply.'],
]);

/** Whether the characters can reply (unknown: not checked yet, so not claimed broken). */
export const llmWorks = (caps: Capabilities | undefined) => caps === undefined || !LLM_PROBLEMS.has(caps.llm);

/** The notice above the conversation while the language model does not work, with the way to fix it. */
export class SetupNotice {
  readonly el = h('div', { class: 'setup-notice', hidden: true, attrs: { role: 'status' } });

  constructor(private readonly openPanel: () => void) {}

  show(caps: Capabilities | undefined): void {
    const problem = caps && LLM_PROBLEMS.get(caps.llm);
    this.el.hidden = problem === undefined;
    if (problem === undefined) return;
    replace(
      this.el,
      h('div', { class: 'setup-text' }, h('strong', null, 'Set up a language model to start. '), problem),
      h('button', { type: 'button', class: 'btn btn-primary setup-open', onclick: () => this.openPanel() }, icon('plug'), 'Set up the connection'),
    );
  }
}

export interface ConnectionPanelEvents {
  /** The server applied a change (or the panel loaded): what it can do now. */
  changed(view: EndpointsView): void;
}

/** Opens the panel; it loads the endpoints from the server. */
export function openConnectionPanel(events: ConnectionPanelEvents): Panel {
  const panel = openPanel('Connection', 'connection-panel');
  replace(panel.body, h('p', { class: 'muted' }, 'Loading…'));
  void api
    .endpoints()
    .then((view) => {
      events.changed(view);
      replace(panel.body, h('p', { class: 'panel-intro' }, 'Where this server finds its language model and speech. Changes apply to the next reply; keys are stored encrypted and never shown again in full.'), ...SECTIONS.map((s) => section(s, view[s.kind], events)));
      panel.body.querySelector<HTMLInputElement>('.endpoint-llm input[name="base_url"]')?.focus();
    })
    .catch((e: unknown) => replace(panel.body, h('p', { class: 'field-error' }, `The connection settings could not be loaded: ${describeError(e)}`)));
  return panel;
}

function section(meta: (typeof SECTIONS)[number], view: EndpointView, events: ConnectionPanelEvents): HTMLElement {
  const baseUrl = h('input', { type: 'url', class: 'input', name: 'base_url', value: view.base_url, spellcheck: false, maxLength: 2000, attrs: { autocomplete: 'off' } });
  const apiKey = h('input', { type: 'password', class: 'input', name: 'api_key', spellcheck: false, maxLength: 4000, attrs: { autocomplete: 'new-password' } });
  const clearKey = h('input', { type: 'checkbox', name: 'clear_key' });
  const listId = `models-${meta.kind}`;
  const models = h('datalist', { id: listId });
  const model = h('input', { type: 'text', class: 'input', name: 'model', value: view.model, spellcheck: false, maxLength: 200, attrs: { list: listId, autocomplete: 'off' } });
  const voice = h('input', { type: 'text', class: 'input', name: 'voice', value: view.voice ?? '', spellcheck: false, maxLength: 200, placeholder: 'the engine’s default' });
  const result = h('p', { class: 'endpoint-result', attrs: { role: 'status', 'aria-live': 'polite' } });
  const modelsNote = h('span', { class: 'field-hint models-note' }, meta.modelHint);
  const status = h('p', { class: 'endpoint-status' });
  const renderStatus = (v: EndpointView) => {
    apiKey.placeholder = v.api_key.set ? `A key is saved${v.api_key.last4 ? ` (ends in ${v.api_key.last4})` : ''}: leave blank to keep it` : 'No key (a local server needs none)';
    const source = v.source === 'saved' ? 'Set in the app.' : 'From the server’s configuration.';
    replace(status, source, v.note ? ` ${v.note}` : '');
  };
  renderStatus(view);

  /** The fields as a draft: the key only when typed (or cleared), so the saved one is kept otherwise. */
  const draft = (): EndpointDraft => ({
    base_url: baseUrl.value.trim(),
    model: model.value.trim(),
    ...(meta.kind === 'tts' ? { voice: voice.value.trim() || null } : {}),
    ...(clearKey.checked ? { api_key: null } : apiKey.value !== '' ? { api_key: apiKey.value } : {}),
  });
  const say = (ok: boolean | undefined, text: string) => {
    result.dataset.ok = ok === undefined ? '' : String(ok);
    result.textContent = text;
  };

  const loadModels = h('button', { type: 'button', class: 'btn btn-small load-models' }, 'Load models');
  loadModels.onclick = async () => {
    loadModels.disabled = true;
    try {
      const list = (await api.endpointModels(meta.kind, draft())).models;
      replace(models, ...list.map((id) => h('option', { value: id })));
      modelsNote.textContent = list.length > 0 ? `${list.length} model${list.length === 1 ? '' : 's'} offered: pick one in the box, or type.` : 'The server lists no models: type the name.';
    } catch (e) {
      modelsNote.textContent = describeError(e);
    } finally {
      loadModels.disabled = false;
    }
  };
  const test = h('button', { type: 'button', class: 'btn test-endpoint' }, 'Test connection');
  test.onclick = async () => {
    test.disabled = true;
    say(undefined, 'Testing…');
    try {
      const answer = await api.testEndpoint(meta.kind, draft());
      say(answer.ok, answer.message);
    } catch (e) {
      say(false, describeError(e));
    } finally {
      test.disabled = false;
    }
  };
  const save = h('button', { type: 'submit', class: 'btn btn-primary save-endpoint' }, 'Save');
  const forget = h('button', { type: 'button', class: 'btn forget-endpoint', hidden: view.source !== 'saved' }, 'Use the server’s configuration');
  const applied = (v: EndpointsView, what: string) => {
    apiKey.value = '';
    clearKey.checked = false;
    baseUrl.value = v[meta.kind].base_url;
    model.value = v[meta.kind].model;
    voice.value = v[meta.kind].voice ?? '';
    renderStatus(v[meta.kind]);
    forget.hidden = v[meta.kind].source !== 'saved';
    events.changed(v);
    toast(what, 'success', meta.title);
  };
  forget.onclick = async () => {
    try {
      applied(await api.forgetEndpoint(meta.kind), 'Back to the server’s own configuration.');
    } catch (e) {
      say(false, describeError(e));
    }
  };
  const form = h(
    'form',
    { class: `form-section endpoint endpoint-${meta.kind}`, attrs: { 'aria-label': meta.title } },
    h('h3', null, meta.title),
    h('p', { class: 'field-hint' }, meta.about),
    status,
    field('Address (base URL)', baseUrl, 'Ends in /v1 for most servers, e.g. http://localhost:11434/v1 for Ollama.'),
    field('API key', apiKey),
    h('label', { class: 'check' }, clearKey, ' Remove the saved key'),
    h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Model'), h('span', { class: 'model-row' }, model, loadModels), models, modelsNote),
    meta.kind === 'tts' ? field('Default voice', voice, 'For voices that name none on this engine.') : null,
    h('div', { class: 'btn-row endpoint-actions' }, test, save, forget),
    result,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    save.disabled = true;
    try {
      const d = draft();
      const view = await api.saveEndpoint(meta.kind, { ...d, base_url: d.base_url ?? '', model: d.model ?? '' });
      const caps = view.capabilities;
      const note = meta.kind === 'llm' ? (caps.llm === 'ready' ? 'Saved: the language model answers.' : 'Saved, but the language model does not answer yet: test the connection.') : 'Saved.';
      say(meta.kind === 'llm' ? caps.llm === 'ready' : undefined, note);
      applied(view, note);
    } catch (e) {
      say(false, describeError(e));
    } finally {
      save.disabled = false;
    }
  });
  if (meta.kind === 'llm') loadModels.click(); // the LLM's list at once: picking is the usual way
  return form;
}
