// The Personas panel: who the user speaks as. Create, edit and delete personas (name, description,
// picture by link or uploaded file, default or not), and choose the one this conversation uses
// (or the default). `{{user}}` in the characters' cards is the persona's name; its description
// goes into their prompts; its picture is on the user's messages (web/src/chat.ts). Records go
// through the REST API; the choice goes to the session (update_conversation).
import { api } from './api.ts';
import { avatar, h, icon, replace } from './dom.ts';
import { changeConversation, type ConversationLink, conversationSettings } from './conversation-settings.ts';
import { pictureField } from './picture-field.ts';
import type { Store } from './store.ts';
import type { Persona, PersonaCreate } from './types.ts';
import { confirmDialog, describeError, field, openPanel, toast } from './ui.ts';

export function openPersonas(link: ConversationLink, store: Store): void {
  let personas: Persona[] = [];
  let chosen: string | null = null;
  const list = h('ul', { class: 'record-list', attrs: { 'aria-label': 'Personas' } });
  const editor = h('div', { class: 'record-editor' });
  const choice = h('select', { class: 'input', name: 'conversation_persona' });
  choice.addEventListener('change', () => {
    const id = choice.value || null;
    if (changeConversation(link, { persona_id: id })) {
      chosen = id;
      store.choosePersona(id);
      toast(`This conversation now speaks as ${personas.find((p) => p.id === id)?.name ?? 'the default persona'}.`, 'success');
    } else {
      choice.value = chosen ?? '';
      toast('Not connected: try again once the connection is back.', 'error');
    }
  });

  const render = () => {
    const fallback = personas.find((p) => p.is_default);
    replace(choice, h('option', { value: '' }, fallback ? `The default (${fallback.name})` : 'The default (no persona)'), personas.map((p) => h('option', { value: p.id }, p.name)));
    choice.value = chosen ?? '';
    replace(
      list,
      personas.length === 0 ? h('li', { class: 'record-empty' }, 'No personas yet.') : null,
      personas.map((p) =>
        h(
          'li',
          { class: 'record-row persona-row', tabIndex: 0, data: { id: p.id }, onclick: () => edit(p), onkeydown: (ev: KeyboardEvent) => ev.key === 'Enter' && edit(p) },
          avatar(p.name, p.image_url, 'sm'),
          h('span', { class: 'record-main' }, h('span', { class: 'record-name' }, p.name), h('span', { class: 'record-sub' }, p.is_default ? 'default' : p.description.slice(0, 60))),
        ),
      ),
    );
  };
  const reload = async () => {
    try {
      [personas, { persona_id: chosen }] = await Promise.all([api.personas(), conversationSettings(link.conversationId())]);
      store.takePersonas(personas);
    } catch (e) {
      toast(describeError(e), 'error', 'Could not load personas');
    }
    render();
  };
  const edit = (persona: Persona | null): void =>
    replace(
      editor,
      personaForm(persona, async () => {
        await reload();
        edit(null);
      }),
    );

  const panel = openPanel('Personas', 'records-panel personas-panel');
  panel.body.append(
    h('section', { class: 'form-section' }, field('This conversation speaks as', choice, 'The characters call you by this persona’s name; its description is in their prompt.')),
    h('div', { class: 'records' }, h('div', { class: 'record-side' }, h('div', { class: 'record-tools' }, h('button', { type: 'button', class: 'btn btn-primary new-persona', onclick: () => edit(null) }, icon('plus'), 'New persona')), list), editor),
  );
  edit(null);
  void reload();
}

function personaForm(persona: Persona | null, changed: () => Promise<void>): HTMLElement {
  const name = h('input', { type: 'text', class: 'input', name: 'persona_name', required: true, maxLength: 64, value: persona?.name ?? '', placeholder: 'e.g. Captain Rowe' });
  const description = h('textarea', { class: 'input', name: 'persona_description', rows: 5, maxLength: 100_000, value: persona?.description ?? '', placeholder: '{{user}} is… (how the characters should see you)' });
  const picture = pictureField(persona?.image_url ?? null, () => name.value, 'persona_');
  name.addEventListener('input', () => picture.refresh());
  const isDefault = h('input', { type: 'checkbox', name: 'persona_default', checked: persona?.is_default ?? false });
  const error = h('p', { class: 'field-error form-error', attrs: { role: 'alert' } });
  const save = h('button', { type: 'submit', class: 'btn btn-primary save-persona' }, persona ? 'Save persona' : 'Create persona');
  const form = h(
    'form',
    { class: 'record-form persona-form', noValidate: true },
    h('h3', null, persona ? `Edit ${persona.name}` : 'New persona'),
    field('Name', name, 'What the characters call you ({{user}}).'),
    field('Description', description, 'Goes into every character’s prompt while you speak as this persona.'),
    picture.el,
    h('label', { class: 'check' }, isDefault, h('span', null, 'Default — used by conversations that choose no persona')),
    error,
    h('div', { class: 'form-actions' }, save, persona ? h('button', { type: 'button', class: 'btn btn-danger delete-persona', onclick: () => void remove() }, icon('trash'), 'Delete') : null),
  );
  const remove = async () => {
    if (!persona || !(await confirmDialog(`Delete the persona ${persona.name}? Conversations that used it fall back to the default.`))) return;
    try {
      await api.deletePersona(persona.id);
      await changed();
    } catch (e) {
      toast(describeError(e), 'error', 'Could not delete');
    }
  };
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    error.textContent = '';
    if (name.value.trim() === '') return void ((error.textContent = 'A persona needs a name.'), name.focus());
    if (picture.problem()) return void (error.textContent = 'Fix the picture first.');
    const input: PersonaCreate = { name: name.value.trim(), description: description.value, image_url: picture.value(), is_default: isDefault.checked };
    save.disabled = true;
    (persona ? api.updatePersona(persona.id, input) : api.createPersona(input))
      .then(async (saved) => {
        toast(`Saved ${saved.name}.`, 'success');
        await changed();
      })
      .catch((e: unknown) => (error.textContent = describeError(e)))
      .finally(() => (save.disabled = false));
  });
  return form;
}
