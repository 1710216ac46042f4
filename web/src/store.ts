// The records the views share: every character (for names and pictures), every voice, and the
// personas with the one the open conversation chose (for the pictures on the user's messages).
// Loaded over REST and reloaded after each change made here; views subscribe to changes.
import { api } from './api.ts';
import type { Character, Persona, Voice } from './types.ts';

type Listener = () => void;

export class Store {
  characters: Character[] = [];
  voices: Voice[] = [];
  /** The open conversation's cast (character ids, in cast order), as the server announced it. */
  castIds: string[] = [];
  personas: Persona[] = [];
  /** The persona the open conversation chose (null: the default). */
  personaId: string | null = null;
  private readonly listeners = new Set<Listener>();

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The open conversation's cast members, in cast order (is_active is only the default cast of new conversations). */
  get activeCharacters(): Character[] {
    return this.castIds.flatMap((id) => this.character(id) ?? []);
  }

  character(id: string | null | undefined): Character | undefined {
    return id ? this.characters.find((c) => c.id === id) : undefined;
  }

  async reloadCharacters(): Promise<void> {
    this.characters = await api.characters();
    this.changed();
  }

  async reloadPersonas(): Promise<void> {
    this.takePersonas(await api.personas());
  }

  takePersonas(personas: Persona[]): void {
    this.personas = personas;
    this.changed();
  }

  /** The open conversation's persona choice (its settings, or the Personas panel). */
  choosePersona(id: string | null): void {
    if (id === this.personaId) return;
    this.personaId = id;
    this.changed();
  }

  /**
   * The persona a user message of this name was sent as: the conversation's chosen one, else
   * the default, else any of that name (messages carry the name, not the persona).
   */
  personaNamed(name: string): Persona | undefined {
    const named = this.personas.filter((p) => p.name === name);
    return named.find((p) => p.id === this.personaId) ?? named.find((p) => p.is_default) ?? named[0];
  }

  async reloadVoices(): Promise<void> {
    this.voices = await api.voices();
    this.changed();
  }

  /** The conversation's cast as the server announced it (session / active_characters_data): its records are the newest. */
  mergeActive(cast: Character[]): void {
    const byId = new Map(this.characters.map((c) => [c.id, c]));
    for (const c of cast) byId.set(c.id, c);
    this.characters = [...byId.values()].sort((a, b) => a.name.localeCompare(b.name));
    this.castIds = cast.map((c) => c.id);
    this.changed();
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}
