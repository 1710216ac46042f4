// A reply's text as sanitized markdown (a chunk of its own, loaded by markdown.ts). `marked`
// (a well-kept CommonMark/GFM renderer) turns the text into HTML with every raw HTML tag in the
// text escaped (a reply is never HTML), and DOMPurify then keeps only the formatting tags below
// (no attributes but a link's href, http(s) or mailto only), so nothing a model writes can run
// script or load anything. `*actions*` (emphasis) are roleplay narration: they get the
// `narration` class. A reply of one line is rendered inline (no <p>), so its text reads exactly
// as it was written.
import DOMPurify from 'dompurify';
import { Marked } from 'marked';

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const marked = new Marked({
  gfm: true,
  breaks: true,
  async: false,
  renderer: {
    // Raw HTML in the reply is shown as the characters it is made of.
    html: ({ text }) => escapeHtml(text),
    // Pictures are not loaded from a reply: the alt text (or the link) is shown instead.
    image: ({ text, href }) => escapeHtml(text || href),
  },
});

const ALLOWED_TAGS = ['p', 'br', 'em', 'strong', 'del', 's', 'code', 'pre', 'blockquote', 'ul', 'ol', 'li', 'a', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hr', 'table', 'thead', 'tbody', 'tr', 'th', 'td', 'span'];

DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node.nodeName === 'A') {
    const href = node.getAttribute('href') ?? '';
    if (!/^(https?:|mailto:)/i.test(href)) node.removeAttribute('href');
    node.setAttribute('rel', 'noopener noreferrer nofollow');
    node.setAttribute('target', '_blank');
  }
});

/** The reply's text as a sanitized fragment of formatting elements. */
export function renderMarkdown(text: string): DocumentFragment {
  const html = (text.includes('\n') ? marked.parse(text, { async: false }) : marked.parseInline(text, { async: false })).trim();
  const fragment = DOMPurify.sanitize(html, { ALLOWED_TAGS, ALLOWED_ATTR: ['href', 'rel', 'target'], RETURN_DOM_FRAGMENT: true });
  for (const em of fragment.querySelectorAll('em')) em.classList.add('narration');
  return fragment;
}
