// DOM helpers. Every element is created with document.createElement and every piece of text
// goes in as a text node (textContent): nothing in this client ever parses a string as HTML,
// so a name like `<img src=x onerror=alert(1)>` is shown as those characters. Picture URLs
// pass through safeImageUrl: only http(s) and data:image/ are ever put in an src.

import { avatarHue } from './avatar-colors.ts';

type Child = Node | string | number | false | null | undefined | Child[];
type Forbidden = 'innerHTML' | 'outerHTML' | 'style' | 'dataset' | 'className' | 'classList' | 'children';
export type Props<K extends keyof HTMLElementTagNameMap> = Partial<Omit<HTMLElementTagNameMap[K], Forbidden>> & {
  class?: string;
  data?: Record<string, string>;
  attrs?: Record<string, string>;
};

/** `h('button', { class: 'x', onclick }, 'Label')`: an element with properties and children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props?: Props<K> | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props) {
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined) continue;
      if (key === 'class') el.className = String(value);
      else if (key === 'data') Object.assign(el.dataset, value);
      else if (key === 'attrs') {
        for (const [name, v] of Object.entries(value as Record<string, string>)) {
          if (/^on/i.test(name) || /^(src|href|srcset)$/i.test(name)) throw new Error(`h(): attribute ${name} must be set as a checked property`);
          el.setAttribute(name, v);
        }
      } else Reflect.set(el, key, value);
    }
  }
  append(el, children);
  return el;
}

export function append(parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else parent.appendChild(typeof child === 'string' || typeof child === 'number' ? document.createTextNode(String(child)) : child);
  }
}

/** Replaces an element's children. */
export function replace(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, children);
}

/** The URL when it is safe to show as a picture (http:, https:, data:image/…), else null. */
export function safeImageUrl(url: string | null | undefined): string | null {
  if (!url) return null;
  const trimmed = url.trim();
  if (/^data:image\/[a-z0-9.+-]+(;[a-z0-9=.+-]+)*[;,]/i.test(trimmed)) return trimmed;
  try {
    const parsed = new URL(trimmed, window.location.href);
    return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.href : null;
  } catch {
    return null;
  }
}

/** A character's picture, or its initial on a colour derived from its name. */
export function avatar(name: string, imageUrl: string | null | undefined, size: 'sm' | 'md' | 'lg' = 'md'): HTMLElement {
  const safe = safeImageUrl(imageUrl);
  const box = h('span', { class: `avatar avatar-${size}`, attrs: { 'aria-hidden': 'true' } });
  if (safe) {
    const img = h('img', { alt: '', loading: 'lazy', decoding: 'async', referrerPolicy: 'no-referrer' });
    img.src = safe;
    img.onerror = () => replace(box, initial(name));
    box.appendChild(img);
  } else box.appendChild(document.createTextNode(initial(name)));
  box.dataset.avatarName = name;
  box.style.setProperty('--avatar-hue', String(avatarHue(name)));
  return box;
}

function initial(name: string): string {
  const first = [...name.trim()].find((c) => /\p{L}|\p{N}/u.test(c));
  return (first ?? '?').toUpperCase();
}

// -- icons (static path data, never user input) -------------------------------------------------

const ICONS = {
  mic: 'M12 14a3 3 0 0 0 3-3V5a3 3 0 0 0-6 0v6a3 3 0 0 0 3 3Zm5-3a5 5 0 0 1-10 0H5a7 7 0 0 0 6 6.92V21h2v-3.08A7 7 0 0 0 19 11h-2Z',
  micOff: 'M19 11h-1.7a5.3 5.3 0 0 1-.4 2.1l1.3 1.3A7 7 0 0 0 19 11ZM15 11.2V5a3 3 0 0 0-5.9-.8L15 10.1v1.1ZM4.3 3 3 4.3l6 6V11a3 3 0 0 0 4.4 2.7l1.6 1.6A5 5 0 0 1 7 11H5a7 7 0 0 0 6 6.9V21h2v-3.1a6.9 6.9 0 0 0 3.5-1.5l3.2 3.3 1.3-1.3Z',
  send: 'M3.4 20.4 21 12 3.4 3.6 3.4 10.1 15 12 3.4 13.9Z',
  stop: 'M7 7h10v10H7z',
  plus: 'M11 5h2v6h6v2h-6v6h-2v-6H5v-2h6z',
  pencil: 'M4 17.2V20h2.8l8.3-8.3-2.8-2.8L4 17.2Zm13.7-7.6a.8.8 0 0 0 0-1.1l-1.8-1.8a.8.8 0 0 0-1.1 0L13.4 8l2.8 2.8 1.5-1.2Z',
  trash: 'M7 21a2 2 0 0 1-2-2V7H4V5h5V4h6v1h5v2h-1v12a2 2 0 0 1-2 2H7Zm2-4h2V9H9v8Zm4 0h2V9h-2v8Z',
  gear: 'M19.4 13a7.6 7.6 0 0 0 0-2l2.1-1.6-2-3.5-2.5 1a7.4 7.4 0 0 0-1.7-1L15 3h-4l-.4 2.9a7.4 7.4 0 0 0-1.7 1l-2.5-1-2 3.5L6.6 11a7.6 7.6 0 0 0 0 2l-2.1 1.6 2 3.5 2.5-1a7.4 7.4 0 0 0 1.7 1L11 21h4l.4-2.9a7.4 7.4 0 0 0 1.7-1l2.5 1 2-3.5L19.4 13ZM13 15.5a3.5 3.5 0 1 1 0-7 3.5 3.5 0 0 1 0 7Z',
  people: 'M16 11a3 3 0 1 0 0-6 3 3 0 0 0 0 6Zm-8 0a3 3 0 1 0 0-6 3 3 0 0 0 0 6Zm0 2c-2.3 0-7 1.2-7 3.5V19h14v-2.5C15 14.2 10.3 13 8 13Zm8 0h-1a4.2 4.2 0 0 1 2 3.5V19h6v-2.5c0-2.3-4.7-3.5-7-3.5Z',
  wave: 'M3 10h2v4H3zm4-3h2v10H7zm4-4h2v18h-2zm4 4h2v10h-2zm4 3h2v4h-2z',
  play: 'M8 5v14l11-7z',
  close: 'M18.3 5.7 12 12l6.3 6.3-1.4 1.4L12 13.4l-6.3 6.3-1.4-1.4L10.6 12 4.3 5.7l1.4-1.4L12 10.6l6.3-6.3z',
  menu: 'M3 6h18v2H3zm0 5h18v2H3zm0 5h18v2H3z',
  // Message actions.
  redo: 'M12 5a7 7 0 1 0 7 7h-2a5 5 0 1 1-1.5-3.6L13 11h7V4l-2.6 2.6A7 7 0 0 0 12 5Z',
  copy: 'M8 8h11v13H8zm2 2v9h7v-9zM5 3h11v3H7v11H5z',
  prev: 'M15.4 7.4 14 6l-6 6 6 6 1.4-1.4-4.6-4.6z',
  next: 'M8.6 7.4 10 6l6 6-6 6-1.4-1.4 4.6-4.6z',
  more: 'M5 10h3v3H5zm5.5 0h3v3h-3zM16 10h3v3h-3z',
  speaker: 'M4 9v6h4l5 4V5L8 9H4Zm12.5 3a4.5 4.5 0 0 0-2.5-4v8a4.5 4.5 0 0 0 2.5-4ZM14 3.2v2.1a7 7 0 0 1 0 13.4v2.1a9 9 0 0 0 0-17.6Z',
  plug: 'M16 7V3h-2v4h-4V3H8v4H7a1 1 0 0 0-1 1v4a6 6 0 0 0 5 5.9V21h2v-3.1a6 6 0 0 0 5-5.9V8a1 1 0 0 0-1-1h-1Z',
} as const;
export type IconName = keyof typeof ICONS;

export function icon(name: IconName): SVGSVGElement {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.classList.add('icon');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', ICONS[name]);
  svg.appendChild(path);
  return svg;
}

/** An icon button with an accessible name (also its tooltip). */
export function iconButton(name: IconName, label: string, onclick: (ev: MouseEvent) => void, extraClass = ''): HTMLButtonElement {
  return h('button', { type: 'button', class: `icon-btn ${extraClass}`.trim(), title: label, attrs: { 'aria-label': label }, onclick }, icon(name));
}

export function formatDate(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return sameDay ? d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' }) : d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' });
}
