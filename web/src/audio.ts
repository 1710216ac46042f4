// The page's one AudioContext, shared by playback and capture. It is created lazily — on the
// first user gesture (click, key press) or when audio first needs it — and reused for the life
// of the page, never one per connection or per message. Browsers start a context created
// without a gesture "suspended"; every later gesture resumes it.
let context: AudioContext | undefined;

export function audioContext(): AudioContext {
  context ??= new AudioContext({ latencyHint: 'interactive' });
  if (context.state === 'suspended') void context.resume().catch(() => undefined);
  return context;
}

/** The context if it exists already (nothing is created). */
export function existingAudioContext(): AudioContext | undefined {
  return context;
}

/** Creates (or resumes) the context on user gestures, as autoplay policies require. */
export function unlockAudioOnGesture(): void {
  const unlock = () => void audioContext();
  for (const type of ['pointerdown', 'keydown'] as const) document.addEventListener(type, unlock, { capture: true, passive: true });
}
