// The Voices panel: list, create and edit voices — one of the configured TTS engines
// (GET /api/voices/engines), the method and its own fields (preset: the engine's voice, espeak's
// by language and variant; clone: a reference clip and its transcript, the stored one shown and
// playable, a new one's transcript pre-filled by the server's speech input engine; description:
// speaker and scene), speed, pitch and, on Higgs v3, the delivery style — delete one after
// confirming, and hear the settings as edited, before saving (`preview_voice` with a definition,
// played through the normal audio path, the panel open).
import { api, ApiError } from './api.ts';
import { type ClipRecording, startRecording } from './clip-recorder.ts';
import { h, icon, replace } from './dom.ts';
import { styleFields } from './style-fields.ts';
import type { Store } from './store.ts';
import type { ClientMessage, EngineVoices, Voice, VoiceCreate, VoiceDefinition } from './types.ts';
import { confirmDialog, describeError, field, openPanel, toast } from './ui.ts';

const METHODS = ['preset', 'clone', 'description'] as const;
type Method = (typeof METHODS)[number];
const METHOD_LABELS = new Map<string, string>([
  ['preset', 'Preset (an engine voice)'],
  ['clone', 'Clone (from a reference clip)'],
  ['description', 'Description (a written speaker and scene)'],
]);

type EngineInfo = EngineVoices['engines'][number];

/** How an engine voice id reads in the list: espeak's by language and variant, others by id. */
function voiceNamer(info: EngineInfo | undefined): (id: string) => string {
  const labels = new Map((info?.voice_labels ?? []).map((l) => [l.voice, l.variant ? `${l.language}, ${l.variant}` : l.language]));
  return (id) => labels.get(id) ?? id;
}

export function openVoices(store: Store, send: (message: ClientMessage) => boolean, beforePreview: () => void): void {
  let selected: Voice | null = null;
  let engines: EngineVoices = { engines: [] };
  const list = h('ul', { class: 'record-list', attrs: { 'aria-label': 'Voices' } });
  const editor = h('div', { class: 'record-editor' });

  const renderList = () => {
    replace(
      list,
      store.voices.length === 0 ? h('li', { class: 'record-empty' }, 'No voices yet.') : null,
      store.voices.map((v) =>
        h(
          'li',
          { class: `record-row voice-row${selected?.voice === v.voice ? ' is-selected' : ''}`, data: { voice: v.voice }, tabIndex: 0, onclick: () => edit(v), onkeydown: (ev: KeyboardEvent) => ev.key === 'Enter' && edit(v) },
          h('span', { class: 'voice-icon' }, icon('wave')),
          h('span', { class: 'record-main' }, h('span', { class: 'record-name' }, v.voice), h('span', { class: 'record-sub' }, [v.engine ?? 'default engine', v.engine_voice].filter(Boolean).join(' · '))),
        ),
      ),
    );
  };

  const edit = (voice: Voice | null) => {
    selected = voice;
    renderList();
    replace(
      editor,
      voiceForm(voice, engines, {
        saved: async (v) => {
          await store.reloadVoices();
          edit(store.voices.find((x) => x.voice === v.voice) ?? v);
        },
        deleted: async () => {
          await Promise.all([store.reloadVoices(), store.reloadCharacters()]);
          edit(null);
        },
        preview: (definition, text) => {
          beforePreview();
          if (!send({ type: 'preview_voice', data: text ? { voice: definition, text } : { voice: definition } })) toast('Not connected: the preview cannot play right now.', 'error');
        },
      }),
    );
  };

  const panel = openPanel('Voices', 'records-panel voices-panel', () => unsubscribe());
  const unsubscribe = store.subscribe(renderList);
  panel.body.append(h('p', { class: 'panel-loading' }, 'Loading voices…'));
  // The editor needs the engine's voice list, so the panel fills in once both have arrived.
  void Promise.all([store.reloadVoices(), api.engines()])
    .then(([, e]) => (engines = e))
    .catch((e: unknown) => toast(describeError(e), 'error', 'Could not load voices'))
    .finally(() => {
      panel.body.replaceChildren(
        h(
          'div',
          { class: 'records' },
          h('div', { class: 'record-side' }, h('div', { class: 'record-tools' }, h('button', { type: 'button', class: 'btn btn-primary new-voice', onclick: () => edit(null) }, icon('plus'), 'New voice')), list),
          editor,
        ),
      );
      renderList();
      edit(null);
    });
}

interface FormActions {
  saved(voice: Voice): Promise<void>;
  deleted(): Promise<void>;
  preview(voice: VoiceDefinition, text: string): void;
}

function voiceForm(voice: Voice | null, engines: EngineVoices, actions: FormActions): HTMLElement {
  const key = h('input', { type: 'text', class: 'input', name: 'voice', required: true, maxLength: 200, value: voice?.voice ?? '', readOnly: voice !== null, placeholder: 'e.g. mira-warm' });
  // Only the engines this server has configured (GET /api/voices/engines); a stored voice's own
  // engine stays listed (marked) when the server no longer has it, so saving does not change it.
  const defaultEngine = engines.engines.find((e) => e.default) ?? engines.engines[0];
  const engineInfo = (name: string) => engines.engines.find((e) => e.engine === name) ?? (name === '' ? defaultEngine : undefined);
  const stale = voice?.engine && !engineInfo(voice.engine) ? [h('option', { value: voice.engine }, `${voice.engine} (not configured)`)] : [];
  const engine = h(
    'select',
    { class: 'input', name: 'engine' },
    h('option', { value: '' }, defaultEngine ? `Server default (${defaultEngine.engine})` : 'Server default'),
    engines.engines.map((e) => h('option', { value: e.engine }, e.engine)),
    stale,
  );
  engine.value = voice?.engine ?? defaultEngine?.engine ?? '';
  const engineVoice = h('select', { class: 'input', name: 'engine_voice' });
  const fillEngineVoices = (current: string | null) => {
    const info = engineInfo(engine.value);
    const ids = info ? [...info.voices] : [];
    if (current && !ids.includes(current)) ids.unshift(current);
    const name = voiceNamer(info);
    replace(engineVoice, h('option', { value: '' }, info ? `Engine default (${name(info.default_voice)})` : 'Engine default'), ids.map((id) => h('option', { value: id }, name(id))));
    engineVoice.value = current ?? '';
  };

  const slider = (name: 'speed' | 'pitch', min: number, max: number, value: number) => {
    const range = h('input', { type: 'range', name, min: String(min), max: String(max), step: '0.05', value: String(value), class: 'range' });
    const number = h('input', { type: 'number', min: String(min), max: String(max), step: '0.05', value: String(value), class: 'input input-num', attrs: { 'aria-label': name } });
    range.addEventListener('input', () => (number.value = range.value));
    number.addEventListener('input', () => (range.value = number.value));
    return { range, number, row: h('div', { class: 'slider-row' }, range, number) };
  };
  const speed = slider('speed', 0.25, 4, voice?.speed ?? 1);
  const pitch = slider('pitch', 0, 2, voice?.pitch ?? 1);
  const method = h('select', { class: 'input', name: 'method' });
  // The methods the chosen engine can speak (preset always), and the voice's own if it is another.
  const fillMethods = (current: string) => {
    const offered = METHODS.filter((m) => m === 'preset' || m === current || (engineInfo(engine.value)?.methods ?? []).includes(m));
    replace(method, offered.map((m) => h('option', { value: m }, METHOD_LABELS.get(m) ?? m)));
    method.value = offered.includes(current as Method) ? current : 'preset';
  };
  const area = (name: 'speaker_desc' | 'scene_prompt', value: string | null, placeholder: string) => h('textarea', { class: 'input', name, rows: 2, maxLength: 5000, value: value ?? '', placeholder });
  const speakerDesc = area('speaker_desc', voice?.speaker_desc ?? null, 'e.g. An old sea captain, gravelly and slow');
  const scenePrompt = area('scene_prompt', voice?.scene_prompt ?? null, 'e.g. A quiet room, close to the microphone');

  // Each method its own fields: preset the engine's voice, clone a reference clip with its
  // transcript, description a speaker and a scene. audio_path/text_path (the stored clip's file
  // names) and audio_tokens are the server's: never shown, never sent on save.
  const clip = cloneFields(voice, actions);
  const presetFields = h('div', { class: 'method-fields preset-fields' }, field('Engine voice', engineVoice));
  // The delivery style: only Higgs v3 reads it, so it shows for that engine only (kept when hidden).
  const style = styleFields(voice?.style ?? null, 'None');
  const showStyle = () => (style.el.hidden = engineInfo(engine.value)?.engine !== 'higgs');
  const descriptionFields = h('div', { class: 'method-fields description-fields' }, field('Speaker description', speakerDesc, 'Who is speaking and how they sound'), field('Scene', scenePrompt, 'Where they are: the recording’s setting'));
  const sections = new Map<string, HTMLElement>([
    ['preset', presetFields],
    ['clone', clip.section],
    ['description', descriptionFields],
  ]);
  const showMethodFields = () => sections.forEach((section, m) => (section.hidden = m !== method.value));
  method.addEventListener('change', showMethodFields);
  engine.addEventListener('change', () => {
    fillEngineVoices(engineVoice.value || null);
    fillMethods(method.value);
    showMethodFields();
    showStyle();
  });
  fillEngineVoices(voice?.engine_voice ?? null);
  fillMethods(voice?.method ?? 'preset');
  showMethodFields();
  showStyle();

  const previewText = h('input', { type: 'text', class: 'input', name: 'preview_text', maxLength: 1000, placeholder: 'Text to speak (optional)' });
  const formError = h('p', { class: 'field-error form-error', attrs: { role: 'alert' } });
  const save = h('button', { type: 'submit', class: 'btn btn-primary save' }, voice ? 'Save changes' : 'Create voice');
  const orNull = (s: string) => (s.trim() === '' ? null : s.trim());

  /** The settings as edited (not yet saved), or why they cannot be used. */
  const edited = (): Omit<VoiceCreate, 'voice'> | string => {
    const speedValue = Number(speed.number.value);
    const pitchValue = Number(pitch.number.value);
    if (!(speedValue >= 0.25 && speedValue <= 4)) return 'Speed must be between 0.25 and 4.';
    if (!(pitchValue >= 0 && pitchValue <= 2)) return 'Pitch must be between 0 and 2.';
    return {
      engine: (engine.value || null) as VoiceCreate['engine'],
      engine_voice: engineVoice.value || null,
      speed: speedValue,
      pitch: pitchValue,
      method: method.value as Method,
      speaker_desc: orNull(speakerDesc.value),
      scene_prompt: orNull(scenePrompt.value),
      style: style.value(),
    };
  };
  const preview = () => {
    formError.textContent = '';
    const fields = edited();
    if (typeof fields === 'string') return void (formError.textContent = fields);
    const name = key.value.trim();
    // A clone previews with the clip stored for this voice (uploading one updates `voice`).
    const stored = voice?.audio_path && voice.text_path ? { audio_path: voice.audio_path, text_path: voice.text_path } : {};
    actions.preview({ ...(name ? { voice: name } : {}), ...fields, ...stored }, previewText.value.trim());
  };

  const form = h(
    'form',
    { class: 'record-form voice-form', noValidate: true, data: { updatedAt: voice?.updated_at ?? '' } },
    h('h3', null, voice ? `Edit ${voice.voice}` : 'New voice'),
    field('Name', key, voice ? 'The name is the voice’s key; characters refer to it.' : 'Characters refer to the voice by this name.'),
    h('div', { class: 'field-pair' }, field('Engine', engine), field('Method', method)),
    presetFields,
    clip.section,
    descriptionFields,
    h('div', { class: 'field-pair' }, field('Speed', speed.row, '1 = normal'), field('Pitch', pitch.row, '1 = normal (espeak only)')),
    style.el,
    formError,
    h(
      'div',
      { class: 'form-actions' },
      save,
      voice ? h('button', { type: 'button', class: 'btn btn-danger delete', onclick: () => void remove() }, icon('trash'), 'Delete') : null,
    ),
    // Preview plays the settings as they are in the form, saved or not (preview_voice with a definition).
    h('div', { class: 'preview-row' }, previewText, h('button', { type: 'button', class: 'btn preview', onclick: preview }, icon('play'), 'Preview')),
  );

  const remove = async () => {
    if (!voice) return;
    if (!(await confirmDialog(`Delete the voice ${voice.voice}? Characters using it fall back to the default voice.`))) return;
    try {
      await api.deleteVoice(voice.voice);
      toast(`The voice ${voice.voice} was deleted.`, 'success');
      await actions.deleted();
    } catch (e) {
      toast(describeError(e), 'error', 'Could not delete');
    }
  };

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    formError.textContent = '';
    const name = key.value.trim();
    if (name === '') {
      formError.textContent = 'A voice needs a name.';
      return;
    }
    const fields = edited();
    if (typeof fields === 'string') {
      formError.textContent = fields;
      return;
    }
    save.disabled = true;
    (voice ? api.updateVoice(voice.voice, fields) : api.createVoice({ voice: name, ...fields }))
      .then(async (result) => {
        toast(`Saved the voice ${result.voice}.`, 'success');
        await actions.saved(result);
      })
      .catch((e: unknown) => (formError.textContent = describeError(e)))
      .finally(() => (save.disabled = false));
  });
  return form;
}

/**
 * The clone method's own fields: a reference clip (a file, or recorded here) with its transcript,
 * uploaded to the saved voice. The stored clip's transcript and audio are shown when the editor
 * opens; a new clip's transcript is filled in by the server's speech input engine (unless typed).
 */
function cloneFields(voice: Voice | null, actions: FormActions) {
  const file = h('input', { type: 'file', class: 'input', name: 'clip_file', attrs: { accept: 'audio/*,.wav,.mp3,.ogg,.opus,.flac,.webm' } });
  const transcript = h('textarea', { class: 'input', name: 'clip_transcript', rows: 2, maxLength: 2000, placeholder: 'Exactly what is said in the clip' });
  const player = h('audio', { class: 'clip-player', controls: true, hidden: true });
  const status = h('p', { class: 'field-hint clip-status' }, voice?.audio_path ? 'A reference clip is stored for this voice.' : 'No reference clip yet.');
  const hint = h('p', { class: 'field-hint transcript-status', attrs: { 'aria-live': 'polite' } });
  let clip: { blob: Blob; name: string } | undefined;
  let recording: ClipRecording | undefined;
  /** The transcript was typed (or edited) by the person: speech recognition leaves it alone. */
  let typed = false;
  transcript.addEventListener('input', () => (typed = transcript.value.trim() !== ''));
  const play = (src: string) => {
    player.src = src;
    player.hidden = false;
  };
  if (voice?.audio_path) {
    play(api.referenceAudioUrl(voice.voice));
    api
      .reference(voice.voice)
      .then((stored) => {
        if (!typed) transcript.value = stored.transcript;
        status.textContent = `A reference clip is stored for this voice: ${stored.seconds.toFixed(1)} s at ${stored.sample_rate} Hz.`;
      })
      .catch((e: unknown) => (status.textContent = `The stored clip cannot be shown (${describeError(e)}).`));
  }
  const prefill = (blob: Blob, name: string) => {
    hint.textContent = 'Transcribing the clip…';
    api
      .transcribe(blob, name)
      .then(({ text }) => {
        if (clip?.blob !== blob) return; // another clip was chosen meanwhile
        if (typed) return void (hint.textContent = 'Speech recognition heard: “' + text + '” (your transcript is kept).');
        transcript.value = text;
        hint.textContent = 'Filled in by speech recognition: check it against the clip.';
      })
      .catch((e: unknown) => {
        if (clip?.blob !== blob) return;
        hint.textContent = e instanceof ApiError && e.status === 503 ? 'Speech input is not configured on this server: type what is said in the clip.' : `The clip could not be transcribed (${describeError(e)}): type what is said in it.`;
      });
  };
  const take = (blob: Blob, name: string) => {
    clip = { blob, name };
    play(URL.createObjectURL(blob));
    prefill(blob, name);
  };
  file.addEventListener('change', () => {
    const chosen = file.files?.[0];
    if (chosen) take(chosen, chosen.name);
  });
  const record = h('button', { type: 'button', class: 'btn record-clip' }, icon('mic'), 'Record');
  record.addEventListener('click', () => {
    if (recording) {
      const done = recording;
      recording = undefined;
      record.textContent = 'Record';
      void done.stop().then((r) => take(r.blob, r.name), (e: unknown) => toast(describeError(e), 'error', 'Could not record'));
      return;
    }
    startRecording()
      .then((r) => {
        recording = r;
        record.textContent = 'Stop recording';
      })
      .catch((e: unknown) => toast(describeError(e), 'error', 'No microphone'));
  });
  const upload = h('button', { type: 'button', class: 'btn btn-primary upload-clip', disabled: voice === null }, 'Upload clip');
  upload.addEventListener('click', () => {
    if (!voice) return;
    if (!clip) return void (status.textContent = 'Choose or record a clip first.');
    if (transcript.value.trim() === '') return void (status.textContent = 'Type what is said in the clip.');
    upload.disabled = true;
    api
      .uploadReference(voice.voice, clip.blob, clip.name, transcript.value.trim())
      .then(async (result) => {
        status.textContent = `Stored ${result.clip.seconds.toFixed(1)} s of ${result.clip.format} at ${result.clip.sample_rate} Hz.`;
        await actions.saved(result.voice);
      })
      .catch((e: unknown) => (status.textContent = describeError(e)))
      .finally(() => (upload.disabled = false));
  });
  const section = h(
    'fieldset',
    { class: 'clip-fields' },
    h('legend', null, 'Reference clip (3–30 s)'),
    h('div', { class: 'field-pair' }, field('Clip file', file, 'WAV, MP3, Ogg Opus, FLAC or WebM'), h('div', { class: 'clip-actions' }, record, player)),
    field('Transcript', transcript),
    hint,
    h('div', { class: 'form-actions' }, upload),
    voice ? null : h('p', { class: 'field-hint' }, 'Create the voice first, then upload its clip.'),
    status,
  );
  return { section };
}
