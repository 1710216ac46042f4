// Avatar colours that do not collide. A colour derived from the name alone collides (by hashing,
// two names can land on nearly the same hue: "Pip Sprocket" 103° and "Narrator" 106°, "Harlan
// Graves" 187° and "User" 177° did). So the names the page knows — every character and persona —
// get distinct slots of a 12-hue wheel (30° apart): each starts at its hash's slot and takes the
// next free one, in a fixed order (sorted), so every tab gives the same name the same colour.
// Names not known (a deleted character's old messages) use their hash's slot.
const SLOTS = 12;
const assigned = new Map<string, number>();

function hash(name: string): number {
  let h = 0x811c9dc5;
  for (const c of name) {
    h ^= c.codePointAt(0) ?? 0;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** The hue (degrees) of a name's avatar. */
export function avatarHue(name: string): number {
  return (assigned.get(name) ?? hash(name) % SLOTS) * (360 / SLOTS);
}

/** The names in use get distinct colours (up to 12); avatars already drawn are repainted. */
export function assignAvatarHues(names: Iterable<string>): void {
  const unique = [...new Set(names)].sort();
  assigned.clear();
  const taken = new Set<number>();
  for (const name of unique) {
    let slot = hash(name) % SLOTS;
    for (let i = 0; i < SLOTS && taken.has(slot); i++) slot = (slot + 1) % SLOTS;
    taken.add(slot);
    assigned.set(name, slot);
  }
  for (const el of document.querySelectorAll<HTMLElement>('.avatar[data-avatar-name]')) el.style.setProperty('--avatar-hue', String(avatarHue(el.dataset.avatarName ?? '')));
}
