// A picture field (a character's, a persona's): a preview, a link (http or https), an uploaded
// file kept inline as a data: URL (small, so records stay light), or the picture a card brought
// (served by the server under /api, shown as such), and a way to remove it.
import { avatar, h, replace, safeImageUrl } from './dom.ts';

/** Uploaded pictures are stored inline as data: URLs, so they are kept small. */
export const MAX_PICTURE_BYTES = 512 * 1024;

export interface PictureField {
  el: HTMLElement;
  /** The picture URL as chosen (null: none). */
  value(): string | null;
  /** Why the choice cannot be saved, '' when it can. */
  problem(): string;
  /** Redraws the preview (the name it falls back to changed). */
  refresh(): void;
}

export function formatKb(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MB` : `${Math.round(bytes / 1024)} KB`;
}

/** `prefix` names the inputs (image_url, image_file; persona_image_url …); `nameOf` gives the initial's letter. */
export function pictureField(initial: string | null, nameOf: () => string, prefix = ''): PictureField {
  let image = initial;
  const preview = h('span', { class: 'picture-preview' });
  const note = h('span', { class: 'field-hint picture-note' });
  const error = h('span', { class: 'field-error picture-error', attrs: { role: 'alert' } });
  const url = h('input', { type: 'url', class: 'input', name: `${prefix}image_url`, placeholder: 'https://… picture link', attrs: { inputmode: 'url', 'aria-label': 'Picture link' } });
  const file = h('input', { type: 'file', accept: 'image/*', name: `${prefix}image_file`, class: 'visually-hidden', attrs: { 'aria-label': 'Upload a picture' } });
  const show = () => {
    replace(preview, avatar(nameOf() || '?', image, 'lg'));
    const inline = image?.startsWith('data:') ?? false;
    const stored = image?.startsWith('/api/') ?? false; // the picture a card brought
    url.value = inline || stored ? '' : (image ?? '');
    url.placeholder = inline ? 'Uploaded picture (stored with the record)' : stored ? 'The card’s picture (stored on the server)' : 'https://… picture link';
    note.textContent = inline && image ? `Uploaded picture, ${Math.round((image.length * 3) / 4 / 1024)} KB` : stored ? 'The picture from the imported card.' : '';
  };
  url.addEventListener('change', () => {
    const value = url.value.trim();
    error.textContent = '';
    if (value !== '' && !safeImageUrl(value)) {
      error.textContent = 'A picture link must start with http:// or https://.';
      return;
    }
    image = value === '' ? null : value;
    show();
  });
  file.addEventListener('change', () => {
    const chosen = file.files?.[0];
    file.value = '';
    error.textContent = '';
    if (!chosen) return;
    if (!chosen.type.startsWith('image/')) {
      error.textContent = `“${chosen.name}” is not a picture.`;
      return;
    }
    if (chosen.size > MAX_PICTURE_BYTES) {
      error.textContent = `That picture is ${formatKb(chosen.size)}; the limit is ${formatKb(MAX_PICTURE_BYTES)}. Choose a smaller image or use a link.`;
      return;
    }
    const reader = new FileReader();
    reader.onload = () => {
      const result = typeof reader.result === 'string' ? reader.result : '';
      if (!safeImageUrl(result)) {
        error.textContent = 'That file could not be read as a picture.';
        return;
      }
      image = result;
      show();
    };
    reader.onerror = () => (error.textContent = 'That file could not be read.');
    reader.readAsDataURL(chosen);
  });
  show();
  const el = h(
    'div',
    { class: 'field' },
    h('span', { class: 'field-label' }, 'Picture'),
    h(
      'div',
      { class: 'picture-row' },
      preview,
      h(
        'div',
        { class: 'picture-controls' },
        url,
        h(
          'div',
          { class: 'picture-buttons' },
          h('button', { type: 'button', class: 'btn upload', onclick: () => file.click() }, `Upload… (max ${formatKb(MAX_PICTURE_BYTES)})`),
          h('button', { type: 'button', class: 'btn btn-quiet remove-picture', onclick: () => ((image = null), (error.textContent = ''), show()) }, 'Remove'),
        ),
        note,
        error,
        file,
      ),
    ),
  );
  return { el, value: () => image, problem: () => error.textContent ?? '', refresh: show };
}
