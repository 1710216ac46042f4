// The records the views share: every character (for names and pictures) and every voice.
// Loaded over REST and reloaded after each change made here; views subscribe to changes.
import { api } from './api.ts';
import type { Character, Voice } from './types.ts';

type Listener = () => void;

export class Store {
  characters: Character[] = [];
  voices: Voice[] = [];
  private readonly listeners = new Set<Listener>();

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get activeCharacters(): Character[] {
    return this.characters.filter((c) => c.is_active);
  }

  character(id: string | null | undefined): Character | undefined {
    return id ? this.characters.find((c) => c.id === id) : undefined;
  }

  async reloadCharacters(): Promise<void> {
    this.characters = await api.characters();
    this.changed();
  }

  async reloadVoices(): Promise<void> {
    this.voices = await api.voices();
    this.changed();
  }

  /** The active characters as the server announced them (session / active_characters_data). */
  mergeActive(active: Character[]): void {
    const byId = new Map(this.characters.map((c) => [c.id, c]));
    for (const c of active) byId.set(c.id, c);
    const activeIds = new Set(active.map((c) => c.id));
    this.characters = [...byId.values()].map((c) => ({ ...c, is_active: activeIds.has(c.id) }));
    this.characters.sort((a, b) => a.name.localeCompare(b.name));
    this.changed();
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}
