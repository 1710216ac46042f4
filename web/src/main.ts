// The Chorus web client: builds the page and wires the pieces together. Server messages come
// in through the Connection and go to the view that owns them (chat, player, settings…);
// user actions go out as protocol messages. This file owns the session-level state: which
// conversation is open (resumed after every reconnect), whether the mic is on (listening is
// re-requested after every reconnect), and what counts as "busy" (a reply streaming or audio
// playing), which decides whether a new message interrupts first.
import './style.css';
import './ux.css';
import { audioContext, unlockAudioOnGesture } from './audio.ts';
import { CastBar } from './cast-bar.ts';
import { ChatView } from './chat.ts';
import { openCharacters } from './characters.ts';
import { Connection, type ConnectionState, defaultConnectionOptions, socketUrl } from './connection.ts';
import { ConversationList } from './conversations.ts';
import { debug, remember } from './debug.ts';
import { Drawer } from './drawer.ts';
import { exportMenu } from './export.ts';
import { ConversationSearch } from './search.ts';
import { assignAvatarHues } from './avatar-colors.ts';
import { rememberPictures } from './picture-memory.ts';
import { latency } from './latency.ts';
import { installShortcuts, skipLink } from './shortcuts.ts';
import { avatar, h, icon, iconButton, replace } from './dom.ts';
import { ensureSession } from './login.ts';
import { Microphone } from './mic.ts';
import { Player } from './player.ts';
import { lastConversation, rememberConversation, Settings } from './settings.ts';
import { Store } from './store.ts';
import type { CastSettings, ClientMessage, ErrorCode, ServerMessage, ServerMessageOf, SttState } from './types.ts';
import { errorWords } from './errors.ts';
import { describeError, toast } from './ui.ts';
import { openVoices } from './voices.ts';
import { openLorebooks } from './lorebooks.ts';
import { openPersonas } from './personas.ts';
import { llmWorks, openConnectionPanel, SetupNotice } from './connection-panel.ts';
import { ListeningControls } from './listening.ts';
import type { Capabilities } from './types.ts';

/** Errors that belong to a reply: its bubble says them (chat.markReplyError), not a toast. */
const REPLY_ERRORS: ReadonlyMap<ErrorCode, 'failed' | 'speech'> = new Map([
  ['llm_error', 'failed'],
  ['llm_not_configured', 'failed'],
  ['tts_error', 'speech'],
] as const);

const STT_LABELS: Record<SttState, string> = { inactive: 'Mic idle', listening: 'Listening', recording: 'Hearing you', transcribing: 'Transcribing' };

class App {
  private readonly store = new Store();
  private readonly chat = new ChatView(this.store, (m) => this.messageAction(m));
  private readonly conn: Connection;
  private readonly settings: Settings;
  private readonly player: Player;
  private readonly mic: Microphone;
  private readonly conversations: ConversationList;

  /** The conversation this page shows and the server session writes to. */
  private conversationId: string | null = null;
  /** Whether that conversation exists in storage (so a reconnect can load it). */
  private conversationStored = false;
  /** The session's own (new) conversation, the fallback when a resume finds nothing stored. */
  private sessionConversationId: string | null = null;
  /** Resume this conversation on the next session (from the last visit, at first). */
  private resumeId: string | null = lastConversation();
  private resumeRequest: string | null = null;
  private requestCounter = 0;
  private micOn = false;
  private sttState: SttState = 'inactive';
  private userName = 'User';
  private readonly speakingNames = new Map<string, string>();
  private readonly audioNames = new Map<string, string>();
  private countdownTimer: number | undefined;
  /** Find in the open conversation (search.ts) and its export (export.ts). */
  private readonly search = new ConversationSearch(() => this.chat.el);
  private readonly exportSource = {
    storedConversation: () => (this.conversationStored ? this.conversationId : null),
    title: () => this.title.textContent ?? 'Conversation',
    userName: () => this.userName,
  };
  /** What the server can do (the session greeting, then the connection panel's answers). */
  private caps: Capabilities | undefined;
  private lastState: ConnectionState | undefined;
  private readonly setup = new SetupNotice(() => this.openConnection());
  private readonly listening = new ListeningControls({
    changed: (prefs) => this.applyListening(prefs),
    speechInput: () => this.caps?.speech_input !== false,
    micOn: () => this.micOn,
  });
  /** Auto-play off: plays the reply's audio that waits. */
  private readonly playButton = h('button', { type: 'button', class: 'btn btn-small play-held', hidden: true }, icon('play'), 'Play reply');

  // elements that change
  private readonly connPill = h('span', { class: 'conn-pill', attrs: { role: 'status' } });
  private readonly banner = h('div', { class: 'conn-banner', hidden: true, attrs: { role: 'status' } });
  private readonly title = h('h1', { class: 'conv-heading' }, 'New conversation');
  /** The open conversation's cast and rules for who speaks (web/src/cast-bar.ts). */
  private readonly cast = new CastBar(this.store, { conversationId: () => this.conversationId, send: (m) => this.send(m) });
  private readonly input = h('textarea', { class: 'composer-input', rows: 1, placeholder: 'Message the cast…', maxLength: 20_000, id: 'message-box', attrs: { 'aria-label': 'Message', 'aria-keyshortcuts': '/' } });
  private readonly micButton = h('button', { type: 'button', class: 'icon-btn mic-btn', title: 'Turn the microphone on', attrs: { 'aria-label': 'Microphone', 'aria-pressed': 'false' } }, icon('mic'));
  private readonly stopButton = h('button', { type: 'button', class: 'icon-btn stop-btn', title: 'Stop (Esc)', attrs: { 'aria-label': 'Stop' } }, icon('stop'));
  private readonly sendButton = h('button', { type: 'submit', class: 'icon-btn send-btn', title: 'Send (Enter)', attrs: { 'aria-label': 'Send' } }, icon('send'));
  private readonly activity = h('span', { class: 'activity' });
  private readonly sttChip = h('span', { class: 'stt-chip', hidden: true });
  private readonly micLevel = h('span', { class: 'mic-level', hidden: true }, h('i'));
  private readonly transcriptStable = h('span', { class: 'tr-stable' });
  private readonly transcriptLive = h('span', { class: 'tr-live' });
  private readonly transcript = h('div', { class: 'transcript', hidden: true, attrs: { 'aria-live': 'polite' } }, icon('mic'), this.transcriptStable, this.transcriptLive);
  private readonly micNotice = h('div', { class: 'mic-notice', hidden: true, attrs: { role: 'alert' } });

  constructor(root: HTMLElement) {
    const heartbeat = Number(new URLSearchParams(window.location.search).get('heartbeat'));
    const options = heartbeat >= 200 ? { ...defaultConnectionOptions, pingIntervalMs: heartbeat, pongTimeoutMs: heartbeat } : defaultConnectionOptions;
    // A page that will resume a conversation asks for no greeting of the session's new one (it is not shown).
    this.conn = new Connection(() => socketUrl(window.location) + (this.resumeTarget ? '?greetings=off' : ''), {
      message: (m) => this.onMessage(m),
      binary: (data) => {
        latency.audio();
        this.player.frame(data);
      },
      state: (s) => this.onState(s),
      closed: () => this.onClosed(),
    }, options);
    this.settings = new Settings((m) => this.send(m));
    this.player = new Player({
      speaking: (id, on) => {
        this.chat.speaking(id, on);
        if (on) this.speakingNames.set(id, this.audioNames.get(id) ?? '');
        else this.speakingNames.delete(id);
        this.renderActivity();
      },
      activity: () => {
        this.renderActivity();
        this.playButton.hidden = !this.player.waiting;
      },
      cancelled: (id) => this.chat.audioCut(id),
    });
    this.mic = new Microphone({
      frame: (pcm) => this.sendMicFrame(pcm),
      level: (rms) => {
        this.micLevel.style.setProperty('--level', String(Math.min(1, rms * 6)));
        this.listening.level(rms * 6);
      },
      ended: (reason) => {
        this.micOff(true);
        toast(reason, 'error', 'Microphone');
      },
    });
    this.conversations = new ConversationList({
      open: (id) => this.openConversation(id),
      deleted: (id) => {
        if (id === this.conversationId) {
          this.conversationStored = false;
          rememberConversation(null);
          this.send({ type: 'clear_history' });
        }
      },
      changed: () => this.renderTitle(),
    });
    this.applyListening(this.listening.prefs);
    this.playButton.onclick = () => {
      this.player.playHeld();
      this.playButton.hidden = true;
      this.renderActivity();
    };
    root.replaceChildren(this.layout());
    // Distinct avatar colours for every known name; pictures remembered for deleted characters.
    this.store.subscribe(() => {
      rememberPictures(this.store.characters);
      assignAvatarHues([...this.store.characters.map((c) => c.name), ...this.store.personas.map((p) => p.name), this.userName]);
    });
  }

  async start(): Promise<void> {
    unlockAudioOnGesture();
    await ensureSession(); // a server with AUTH_TOKEN: the token first, then the socket
    this.conn.start();
    void this.store.reloadCharacters().catch((e: unknown) => toast(describeError(e), 'error', 'Could not load characters'));
    void this.store.reloadVoices().catch(() => undefined);
    void this.store.reloadPersonas().catch(() => undefined);
    void this.conversations.refresh();
    this.renderActivity();
    this.renderMic();
    if (!document.querySelector('dialog[open]')) this.input.focus(); // ready to type
  }

  // -- layout ---------------------------------------------------------------------------------

  private layout(): HTMLElement {
    const form = h('form', { class: 'composer' }, this.micButton, this.input, this.stopButton, this.sendButton);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.sendText();
    });
    this.input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        this.sendText();
      }
    });
    // Esc (anywhere) and `/` (to this box): shortcuts.ts.
    installShortcuts({ stop: () => this.busy && this.interrupt(), focusMessageBox: () => this.input.focus() });
    this.input.addEventListener('input', () => this.autosize());
    this.micButton.onclick = () => void this.toggleMic();
    this.stopButton.onclick = () => this.interrupt();

    const sidebar = h(
      'aside',
      { class: 'sidebar' },
      h('div', { class: 'brand' }, h('span', { class: 'logo', attrs: { 'aria-hidden': 'true' } }, icon('wave')), h('span', { class: 'brand-name' }, 'Chorus'), this.connPill),
      h('button', { type: 'button', class: 'btn btn-primary new-chat', onclick: () => this.newConversation() }, icon('plus'), 'New conversation'),
      this.conversations.el,
      h(
        'div',
        { class: 'side-nav' },
        h('button', { type: 'button', class: 'nav-btn nav-characters', onclick: () => openCharacters(this.store) }, icon('people'), 'Characters'),
        h('button', { type: 'button', class: 'nav-btn nav-voices', onclick: () => openVoices(this.store, (m) => this.send(m), () => this.stopForPreview()) }, icon('wave'), 'Voices'),
        h('button', { type: 'button', class: 'nav-btn nav-personas', onclick: () => openPersonas(this.conversationLink, this.store) }, icon('people'), 'Personas'),
        h('button', { type: 'button', class: 'nav-btn nav-lorebooks', onclick: () => openLorebooks(this.conversationLink) }, icon('pencil'), 'Lorebooks'),
        h('button', { type: 'button', class: 'nav-btn nav-settings', onclick: () => this.settings.open() }, icon('gear'), 'Settings'),
        h('button', { type: 'button', class: 'nav-btn nav-connection', onclick: () => this.openConnection() }, icon('plug'), 'Connection'),
      ),
    );
    const menu = iconButton('menu', 'Conversations and panels', () => undefined, 'menu-btn');
    const drawer = new Drawer(sidebar, menu);
    return h(
      'div',
      { class: 'app' },
      skipLink(this.input),
      sidebar,
      drawer.el,
      h(
        'main',
        { class: 'main' },
        h('header', { class: 'topbar' }, menu, this.title, h('div', { class: 'conv-tools' }, this.search.button, exportMenu(this.exportSource)), this.listening.button, this.cast.button),
        this.search.bar,
        this.cast.panel,
        this.banner,
        this.setup.el,
        this.chat.el,
        h('div', { class: 'composer-area' }, this.micNotice, this.transcript, h('div', { class: 'status-line' }, this.sttChip, this.micLevel, this.activity, this.playButton, latency.el), form),
      ),
    );
  }

  private autosize(): void {
    this.input.style.height = 'auto';
    this.input.style.height = `${Math.min(this.input.scrollHeight, 200)}px`;
  }

  // -- server messages ------------------------------------------------------------------------

  private onMessage(m: ServerMessage): void {
    switch (m.type) {
      case 'session':
        return this.onSession(m);
      case 'capabilities':
        return this.applyCapabilities(m.data);
      case 'text_stream_start':
        this.player.reuse(m.data.message_id); // a regenerated or continued message streams again under its id
        this.chat.streamStart(m.data);
        this.markStored();
        return this.renderActivity();
      case 'text_chunk':
        if (m.data.is_final) return;
        if (m.data.text !== '') latency.text();
        this.chat.streamChunk(m.data, m.data.text);
        return;
      case 'text_stream_stop':
        this.chat.streamStop(m.data, m.data.text, m.data.failed ? 'failed' : m.data.interrupted ? 'interrupted' : 'complete');
        this.conversations.refreshSoon();
        return this.renderActivity();
      case 'audio_stream_start':
        this.audioNames.set(m.data.message_id, m.data.character_name);
        return this.player.streamStart(m.data);
      case 'audio_chunk':
        return this.player.chunkHeader(m.data);
      case 'audio_stream_stop':
        this.player.streamStop(m.data);
        this.audioNames.delete(m.data.message_id);
        return this.renderActivity();
      case 'interrupt_ack':
        this.player.interruptAcknowledged();
        return this.renderActivity();
      case 'audio_paused':
        // The user spoke over the reply: silent now, and the server learns exactly what was heard
        // (kept if the interrupt completes; forgotten if the reply resumes).
        this.player.pause();
        for (const position of this.player.positions()) this.send({ type: 'playback_position', data: position });
        return this.renderActivity();
      case 'audio_resumed':
        this.player.resume();
        return this.renderActivity();
      case 'user_message_accepted':
        return this.chat.userAccepted(m.data.message_id, m.data.name);
      case 'message_truncated':
        return this.chat.truncated(m.data.message_id, m.data.text);
      case 'message_updated':
        return this.chat.updated(m.data);
      case 'message_added':
        return this.chat.added(m.data, this.userName);
      case 'message_deleted':
        return this.chat.deleted(m.data.message_id);
      case 'history_cleared':
        this.chat.clear();
        if (m.data.cast_settings) this.takeSettings(m.data.cast_settings);
        this.sessionConversationId = m.data.conversation_id;
        this.setConversation(m.data.conversation_id, false);
        return;
      case 'conversation_loaded':
        if (m.request_id !== undefined && m.request_id === this.resumeRequest) this.resumeRequest = null;
        this.takeSettings(m.data.conversation);
        this.chat.showHistory(m.data.messages, this.userName);
        this.setConversation(m.data.conversation.conversation_id, true);
        this.conversations.refreshSoon(0);
        return;
      case 'model_settings_updated':
        return this.settings.onModelSettings(m.data);
      case 'session_settings_updated':
        this.userName = m.data.user_name;
        return this.settings.onUserName(m.data.user_name);
      case 'active_characters_data':
        return this.store.mergeActive(m.data);
      case 'conversation_updated':
        if (m.data.conversation_id !== this.conversationId) return;
        this.takeSettings(m.data);
        return this.markStored(); // an update stores a new conversation
      case 'not_in_cast':
        // About the message just sent: said under it, in the conversation, not over it.
        this.chat.addNote(`${m.data.names.join(', ')} ${m.data.names.length === 1 ? 'is' : 'are'} not in this conversation's cast: add them in the cast bar to hear from them.`);
        return;
      case 'stt_update':
        return this.showTranscript(undefined, m.text);
      case 'stt_stabilized':
        return this.showTranscript(m.text, undefined);
      case 'stt_final':
        this.clearTranscript();
        if (m.text.trim() !== '') {
          this.chat.addUser(m.text, this.userName, true);
          this.markStored();
        }
        return;
      case 'stt_state':
        this.sttState = m.data.state;
        return this.renderMic();
      case 'db_error':
        toast('The change could not be saved. Try again.', 'error', 'Not saved');
        return;
      case 'error':
        return this.onError(m);
      default:
        return; // CRUD replies: this client manages records over REST
    }
  }

  /** The open conversation's cast and rules (the cast bar) and its persona (the user's pictures). */
  private takeSettings(settings: CastSettings): void {
    this.cast.take(settings);
    this.store.choosePersona(settings.persona_id);
  }

  /** How the Personas and Lorebooks panels reach the open conversation. */
  private readonly conversationLink = { conversationId: () => this.conversationId, send: (m: ClientMessage) => this.send(m) };

  /** The conversation the next session resumes: the one open if it was stored, else the last visit's. */
  private get resumeTarget(): string | null {
    return this.conversationStored ? this.conversationId : this.resumeId;
  }

  private onSession(m: ServerMessageOf<'session'>): void {
    const { data } = m;
    debug.connection.sessions++;
    this.conn.markHealthy();
    this.player.reset();
    this.userName = data.user_name;
    this.sessionConversationId = data.conversation_id;
    this.store.mergeActive(data.active_characters);
    this.takeSettings(data.cast_settings);
    this.settings.onSession(data.model_settings, data.user_name);
    this.applyCapabilities(data.capabilities);
    // Resume: the conversation this page had open (if it was stored), or the last visit's.
    const resume = this.resumeTarget;
    this.resumeId = null;
    if (resume) {
      this.resumeRequest = `resume-${++this.requestCounter}`;
      this.send({ type: 'load_conversation', data: { conversation_id: resume }, request_id: this.resumeRequest });
    } else this.setConversation(data.conversation_id, false);
    // The mic stream survived the reconnect; ask the new session to listen to it again.
    if (this.micOn) this.send({ type: 'start_listening' });
  }

  private onError(m: ServerMessageOf<'error'>): void {
    const { code, message } = m.data;
    if (m.request_id !== undefined && m.request_id === this.resumeRequest) {
      this.resumeRequest = null;
      // The conversation was never stored (or was deleted): carry on in the session's new one.
      const hadMessages = this.conversationStored;
      this.setConversation(this.sessionConversationId, false);
      rememberConversation(null);
      if (hadMessages) this.chat.addNote('The previous conversation could not be reopened; new messages go to a new conversation.');
      return;
    }
    if (code === 'stt_not_configured') {
      this.micOff(false);
      this.micNotice.hidden = false;
      // The server's text is for whoever runs it (which variables to set); the person here gets plain words.
      replace(this.micNotice, h('span', { class: 'notice-text' }, h('strong', null, 'Microphone off. '), 'Talking by voice is not available here yet: type your message instead.'), iconButton('close', 'Dismiss', () => (this.micNotice.hidden = true), 'notice-close'));
      return;
    }
    const words = errorWords(code, message);
    const replyError = REPLY_ERRORS.get(code);
    if (replyError && this.chat.markReplyError(replyError, words.text)) return;
    toast(words.text, 'error', words.title);
  }

  private onState(state: ConnectionState): void {
    // The same state again is a re-render (the capabilities changed), not a new state.
    if (state !== this.lastState) remember(debug.connection.history, state.kind, 100);
    this.lastState = state;
    debug.connection.state = state.kind;
    window.clearInterval(this.countdownTimer);
    const render = () => {
      const seconds = state.kind === 'reconnecting' ? Math.max(0, Math.ceil((state.at - Date.now()) / 1000)) : 0;
      // Connected to a server whose language model does not work is not "all is well".
      const needsSetup = state.kind === 'connected' && !llmWorks(this.caps);
      const text = needsSetup ? 'Needs setup' : state.kind === 'connected' ? 'Connected' : state.kind === 'connecting' ? (state.attempt > 0 ? 'Reconnecting…' : 'Connecting…') : `Reconnecting in ${seconds}s`;
      this.connPill.className = `conn-pill conn-${state.kind}${needsSetup ? ' conn-setup' : ''}`;
      this.connPill.title = needsSetup ? 'Connected, but no language model answers: open Connection' : '';
      this.connPill.dataset.state = state.kind;
      this.connPill.textContent = text;
      this.banner.hidden = state.kind === 'connected' || (state.kind === 'connecting' && state.attempt === 0);
      if (!this.banner.hidden) {
        replace(
          this.banner,
          h('span', null, state.kind === 'reconnecting' ? `Connection lost. Reconnecting in ${seconds}s…` : 'Reconnecting…'),
          state.kind === 'reconnecting' ? h('button', { type: 'button', class: 'btn btn-small', onclick: () => this.conn.retryNow() }, 'Retry now') : null,
        );
      }
    };
    render();
    if (state.kind === 'reconnecting') this.countdownTimer = window.setInterval(render, 250);
  }

  private onClosed(): void {
    // A refused upgrade looks like any drop; if the token is what is missing, ask and retry.
    void ensureSession().then((loggedIn) => loggedIn && this.conn.retryNow());
    this.chat.cutOpenStreams();
    this.player.reset();
    this.sttState = 'inactive';
    this.clearTranscript();
    this.renderMic();
    this.renderActivity();
  }

  // -- actions --------------------------------------------------------------------------------

  private send(message: ClientMessage): boolean {
    const sent = this.conn.send(message);
    if (sent) remember(debug.connection.sent, message.type, 200);
    return sent;
  }

  private get busy(): boolean {
    return this.chat.replying > 0 || this.player.active;
  }

  private sendText(): void {
    const text = this.input.value.trim();
    if (text === '') return;
    // No working language model: the message would only fail, so lead to the setup (the text stays in the box).
    if (!llmWorks(this.caps)) {
      this.openConnection();
      return;
    }
    if (!this.conn.open) {
      toast('Not connected, so the message was not sent. It is still in the box; send it again once connected.', 'error', 'Not sent');
      return;
    }
    audioContext(); // a user gesture: the one AudioContext is created (or resumed) now
    if (this.busy) this.interrupt(); // talking over a character stops it first
    this.send({ type: 'user_message', data: { text } });
    latency.sent();
    this.chat.addUser(text, this.userName, false);
    this.input.value = '';
    this.autosize();
  }

  /** A message action from the conversation view; one that streams a reply stops what is playing first. */
  private messageAction(message: ClientMessage): boolean {
    if (message.type === 'regenerate' || message.type === 'continue') {
      audioContext(); // a user gesture: playback may start
      if (this.busy) this.interrupt();
    }
    const sent = this.send(message);
    if (!sent) toast('Not connected: try again once the connection is back.', 'error');
    return sent;
  }

  /**
   * Stops whatever is replying or playing: here at once, on the server via `interrupt`, told
   * first how much of each reply was heard (playback_position), so it keeps just that.
   */
  private interrupt(): void {
    for (const position of this.player.positions()) this.send({ type: 'playback_position', data: position });
    const sent = this.send({ type: 'interrupt' });
    this.player.stopAll({ awaitAck: sent });
    this.renderActivity();
  }

  private stopForPreview(): void {
    audioContext();
    if (this.busy) this.interrupt();
  }

  private newConversation(): void {
    if (this.busy) this.interrupt();
    if (!this.send({ type: 'clear_history' })) toast('Not connected: try again once the connection is back.', 'error');
  }

  private openConversation(id: string): void {
    if (this.busy) this.interrupt();
    if (!this.send({ type: 'load_conversation', data: { conversation_id: id } })) toast('Not connected: try again once the connection is back.', 'error');
  }

  private setConversation(id: string | null, stored: boolean): void {
    this.conversationId = id;
    this.conversationStored = stored;
    debug.connection.conversationId = id;
    if (stored) rememberConversation(id);
    this.conversations.setCurrent(id);
    this.renderTitle();
  }

  /** A turn started in the current conversation, so the server has stored it. */
  private markStored(): void {
    if (this.conversationStored || !this.conversationId) return;
    this.conversationStored = true;
    rememberConversation(this.conversationId);
    this.conversations.refreshSoon();
  }

  // -- microphone -----------------------------------------------------------------------------

  private async toggleMic(): Promise<void> {
    if (this.micOn) {
      this.micOff(true);
      return;
    }
    this.micNotice.hidden = true;
    this.micButton.disabled = true;
    try {
      await this.mic.start();
    } catch (e) {
      toast(describeError(e), 'error', 'Microphone');
      return;
    } finally {
      this.micButton.disabled = false;
    }
    this.micOn = true;
    debug.mic.on = true;
    this.send({ type: 'start_listening' }); // (sent on the next session if not connected now)
    this.renderMic();
  }

  private micOff(tellServer: boolean): void {
    if (this.micOn && tellServer) this.send({ type: 'stop_listening' });
    this.micOn = false;
    debug.mic.on = false;
    this.mic.stop();
    this.sttState = 'inactive';
    this.clearTranscript();
    this.renderMic();
  }

  private sendMicFrame(pcm: ArrayBuffer): void {
    // Only while on and connected: audio captured during a reconnect is stale, not queued.
    if (!this.micOn || !this.conn.sendBinary(pcm)) return;
    debug.mic.framesSent++;
    debug.mic.bytesSent += pcm.byteLength;
    remember(debug.mic.frameBytes, pcm.byteLength, 50);
  }

  private showTranscript(stable: string | undefined, live: string | undefined): void {
    if (stable !== undefined) this.transcriptStable.textContent = stable;
    if (live !== undefined) {
      const prefix = this.transcriptStable.textContent ?? '';
      this.transcriptLive.textContent = prefix && live.startsWith(prefix) ? live.slice(prefix.length) : live;
      if (prefix && !live.startsWith(prefix)) this.transcriptStable.textContent = '';
    }
    this.transcript.hidden = (this.transcriptStable.textContent ?? '') === '' && (this.transcriptLive.textContent ?? '') === '';
  }

  private clearTranscript(): void {
    this.transcriptStable.textContent = '';
    this.transcriptLive.textContent = '';
    this.transcript.hidden = true;
  }

  // -- rendering ------------------------------------------------------------------------------

  private openConnection(): void {
    openConnectionPanel({ changed: (view) => this.applyCapabilities(view.capabilities) });
  }

  /** The server's capabilities: the first screen's setup notice, the status pill and the mic button follow them. */
  private applyCapabilities(caps: Capabilities | undefined): void {
    this.caps = caps;
    debug.connection.llm = caps?.llm ?? 'unknown';
    this.setup.show(caps);
    if (this.lastState) this.onState(this.lastState);
    if (caps?.speech_input === false && this.micOn) this.micOff(true);
    this.renderMic();
  }

  private applyListening(prefs: ListeningControls['prefs']): void {
    this.player.configure(prefs);
    const newDevice = this.mic.deviceId !== prefs.micDeviceId;
    this.mic.deviceId = prefs.micDeviceId;
    debug.listening = { ...prefs };
    this.playButton.hidden = !this.player.waiting;
    // A new microphone while it is on: reopen it on that device.
    if (newDevice && this.micOn && this.mic.capturing) {
      this.mic.stop();
      void this.mic.start().catch((e: unknown) => {
        this.micOff(true);
        toast(describeError(e), 'error', 'Microphone');
      });
    }
  }

  private renderMic(): void {
    // No speech input on the server: no mic button (the listening controls say why, in plain words).
    this.micButton.hidden = this.caps?.speech_input === false;
    this.micButton.classList.toggle('is-on', this.micOn);
    this.micButton.setAttribute('aria-pressed', String(this.micOn));
    this.micButton.title = this.micOn ? 'Turn the microphone off' : 'Turn the microphone on';
    replace(this.micButton, icon(this.micOn ? 'mic' : 'micOff'));
    this.micLevel.hidden = !this.micOn;
    this.sttChip.hidden = !this.micOn && this.sttState === 'inactive';
    this.sttChip.textContent = this.micOn && this.sttState === 'inactive' ? 'Mic on' : STT_LABELS[this.sttState];
    this.sttChip.dataset.state = this.sttState;
  }

  private renderActivity(): void {
    const replying = this.chat.replyingNames;
    const speaking = [...this.speakingNames.values()].filter(Boolean);
    // Both at once when both are true (one character's text still streaming while another's, or its own, voice plays).
    const parts = [
      replying.length > 0 ? `${replying.join(', ')} ${replying.length > 1 ? 'are' : 'is'} replying…` : '',
      speaking.length > 0 ? `${speaking.join(', ')} ${speaking.length > 1 ? 'are' : 'is'} speaking` : '',
    ].filter(Boolean);
    const text = parts.join(' · ');
    this.activity.textContent = text;
    const busy = this.busy;
    this.stopButton.classList.toggle('is-active', busy);
    document.body.classList.toggle('is-busy', busy);
  }

  private renderTitle(): void {
    const title = this.conversationStored ? (this.conversations.currentTitle ?? 'Conversation') : 'New conversation';
    this.title.textContent = title;
    document.title = `${title} · Chorus`;
  }

}

const root = document.getElementById('app');
if (root) void new App(root).start();
