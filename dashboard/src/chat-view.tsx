import type { ComponentChildren } from 'preact'
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks'
import { mayUseChannel, STANDARD_CHANNELS, type Message, type Participant, type Space } from '@chorus/web'
import { Icon } from './icons.tsx'
import { useToasts } from './toast.tsx'
import { asPriority, Avatar, EmptyState, KindBadge, PresenceDot, PriorityOptions, Time } from './ui.tsx'
import { useSpace } from './use-space.ts'

/** How many messages a conversation shows at first, and how many more each "Show earlier" adds. */
const PAGE = 200
/** Closer than this to the bottom counts as "at the bottom": new messages then keep the view there. */
const STICK_PX = 48
const SELECTED_KEY = 'chorus.conversation'

type Conversation = { kind: 'channel'; channel: string } | { kind: 'dm'; with: string }

// The open conversation survives switching views and reloading (sessionStorage may be unavailable: then it does not).
const remembered = (): string | null => {
  try {
    return sessionStorage.getItem(SELECTED_KEY)
  } catch {
    return null
  }
}
const remember = (key: string): void => {
  try {
    sessionStorage.setItem(SELECTED_KEY, key)
  } catch {
    // Only a convenience.
  }
}

const keyOf = (c: Conversation): string => (c.kind === 'channel' ? `#${c.channel}` : `@${c.with}`)

const fromKey = (key: string | null): Conversation =>
  key !== null && key.startsWith('@') && key.length > 1
    ? { kind: 'dm', with: key.slice(1) }
    : { kind: 'channel', channel: key !== null && key.startsWith('#') && key.length > 1 ? key.slice(1) : 'general' }

const CHANNEL_ABOUT: Record<string, string> = {
  general: 'Everyone, about anything.',
  urgent: 'Things that need attention now.',
  technical: 'Code, systems and how things work.',
  strategic: 'Plans, priorities and decisions.',
  'human-only': 'Only people can read this channel; agents cannot.',
}

/** Which conversation a message belongs to, seen by `me`; undefined for other people's direct messages. */
const conversationOf = (m: Message, me: string): string | undefined => {
  if (m.to === undefined) return `#${m.channel}`
  if (m.from === me) return `@${m.to}`
  if (m.to === me) return `@${m.from}`
  return undefined
}

interface MessageIndex {
  /** Conversation key → its messages, oldest first. */
  byConversation: Map<string, Message[]>
  /** Channels with broadcasts, in order of first use. */
  channels: string[]
  /** Conversation key → my unread messages in it (as the space counts them; see SpaceView.seen). */
  unread: Map<string, Message[]>
}

const push = <T,>(map: Map<string, T[]>, key: string, value: T): void => {
  const list = map.get(key)
  if (list === undefined) map.set(key, [value])
  else list.push(value)
}

/** One pass over every message (the only `all()` per change), grouped by conversation. */
function indexMessages(space: Space, me: string, inbox: readonly Message[]): MessageIndex {
  const byConversation = new Map<string, Message[]>()
  const channels = new Set<string>()
  for (const m of space.messages.all()) {
    const key = conversationOf(m, me)
    if (key === undefined) continue
    if (m.to === undefined) channels.add(m.channel)
    push(byConversation, key, m)
  }
  const unread = new Map<string, Message[]>()
  for (const m of inbox) {
    const key = conversationOf(m, me)
    if (key !== undefined) push(unread, key, m)
  }
  return { byConversation, channels: [...channels], unread }
}

export function ChatView() {
  const { space, me, version, inbox, seen } = useSpace()
  const [selected, setSelected] = useState<Conversation>(() => fromKey(remembered()))
  // `inbox` is a new array whenever the space changed, so this rebuilds then (and not when only `seen` grew).
  const index = useMemo(() => indexMessages(space, me.id, inbox), [space, me, inbox])
  const unreadIn = (key: string): number => index.unread.get(key)?.filter((m) => !seen.has(m.id)).length ?? 0
  const participants = useMemo(() => space.participants.list(), [space, version])

  const channels = useMemo(() => {
    const standard: string[] = STANDARD_CHANNELS.filter((c) => mayUseChannel({ kind: 'human' }, c))
    return [...standard, ...index.channels.filter((c) => !standard.includes(c) && mayUseChannel({ kind: 'human' }, c)).sort()]
  }, [index])
  const others = participants.filter((p) => p.id !== me.id)

  const select = (c: Conversation): void => {
    setSelected(c)
    remember(keyOf(c))
  }
  const key = keyOf(selected)

  return (
    <section class="chat" data-testid="view-chat" aria-label="Chat">
      <aside class="conversations" aria-label="Conversations">
        <h2 class="list-title">Channels</h2>
        <ul class="conversation-list">
          {channels.map((c) => (
            <li key={c}>
              <ConversationButton
                testId={`channel-${c}`}
                current={key === `#${c}`}
                unread={unreadIn(`#${c}`)}
                onClick={() => select({ kind: 'channel', channel: c })}
              >
                <span class="channel-hash" aria-hidden="true">
                  #
                </span>
                <span class="conversation-name">{c}</span>
              </ConversationButton>
            </li>
          ))}
        </ul>
        <h2 class="list-title">Direct messages</h2>
        {others.length === 0 ? (
          <p class="list-empty">Nobody else has joined yet. When someone does, you can write to them here.</p>
        ) : (
          <ul class="conversation-list">
            {others.map((p) => (
              <li key={p.id}>
                <ConversationButton
                  testId={`dm-${p.id}`}
                  current={key === `@${p.id}`}
                  unread={unreadIn(`@${p.id}`)}
                  onClick={() => select({ kind: 'dm', with: p.id })}
                >
                  <PresenceDot status={space.presence.status(p.id).status} />
                  <span class="conversation-name">{p.name}</span>
                  {p.kind !== 'human' && <KindBadge kind={p.kind} />}
                </ConversationButton>
              </li>
            ))}
          </ul>
        )}
      </aside>
      <ConversationPane
        key={key}
        conversation={selected}
        messages={index.byConversation.get(key) ?? []}
        unread={index.unread.get(key) ?? []}
        participants={participants}
      />
    </section>
  )
}

function ConversationButton(props: { testId: string; current: boolean; unread: number; onClick: () => void; children: ComponentChildren }) {
  return (
    <button type="button" class="conversation" data-testid={props.testId} aria-current={props.current ? 'true' : undefined} onClick={props.onClick}>
      {props.children}
      {props.unread > 0 && (
        <span class="count-badge" data-testid="unread-count" aria-label={`${props.unread} unread`}>
          {props.unread > 99 ? '99+' : props.unread}
        </span>
      )}
    </button>
  )
}

interface PaneProps {
  conversation: Conversation
  messages: Message[]
  unread: Message[]
  participants: Participant[]
}

function ConversationPane({ conversation, messages, unread, participants }: PaneProps) {
  const { me, space, read } = useSpace()
  const [limit, setLimit] = useState(PAGE)
  const listRef = useRef<HTMLDivElement>(null)
  const atBottom = useRef(true)
  // Set before showing earlier messages: the list's height then, to keep the same messages in view.
  const heightBefore = useRef<number | undefined>(undefined)
  const shown = messages.length > limit ? messages.slice(messages.length - limit) : messages
  const byId = useMemo(() => new Map(participants.map((p) => [p.id, p])), [participants])
  const partner = conversation.kind === 'dm' ? byId.get(conversation.with) : undefined

  useLayoutEffect(() => {
    const el = listRef.current
    if (el === null) return
    if (heightBefore.current !== undefined) {
      el.scrollTop += el.scrollHeight - heightBefore.current
      heightBefore.current = undefined
    } else if (atBottom.current) {
      el.scrollTop = el.scrollHeight
    }
  })

  // An open conversation is read: all of it, since "Show earlier" is a click away and the cursor cannot skip the
  // older unread ones anyway. Not while the page is hidden: nobody is reading then.
  const pageVisible = usePageVisible()
  useEffect(() => {
    if (pageVisible && unread.length > 0) read(unread)
  }, [unread, pageVisible, read])

  const title = conversation.kind === 'channel' ? conversation.channel : (partner?.name ?? conversation.with)
  const about =
    conversation.kind === 'channel'
      ? (CHANNEL_ABOUT[conversation.channel] ?? 'A channel someone started.')
      : partner === undefined
        ? 'Not a participant of this space.'
        : `Direct messages between you and ${partner.name}.`

  return (
    <div class="conversation-pane">
      <header class="conversation-header">
        <div class="conversation-title">
          {conversation.kind === 'channel' ? <Icon name="hash" size={18} /> : partner !== undefined && <PresenceDot status={space.presence.status(partner.id).status} />}
          <h1>{title}</h1>
          {partner !== undefined && <KindBadge kind={partner.kind} />}
        </div>
        <p class="conversation-about">{about}</p>
        <p class="conversation-count">
          <span data-testid="message-count">{messages.length}</span> {messages.length === 1 ? 'message' : 'messages'}
        </p>
      </header>
      <div
        class="message-scroller"
        ref={listRef}
        onScroll={(e) => {
          const el = e.currentTarget
          atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < STICK_PX
        }}
      >
        {messages.length > shown.length && (
          <div class="show-earlier">
            <button
              type="button"
              class="button subtle"
              data-testid="show-earlier"
              onClick={() => {
                heightBefore.current = listRef.current?.scrollHeight
                setLimit((l) => l + PAGE)
              }}
            >
              Show earlier messages ({messages.length - shown.length} more)
            </button>
          </div>
        )}
        {messages.length === 0 ? (
          <EmptyState title={conversation.kind === 'channel' ? `Nothing in #${title} yet` : `No messages with ${title} yet`}>
            {conversation.kind === 'channel'
              ? 'Write the first message below: everyone in the space sees it as soon as they are connected.'
              : `Write below: direct messages show up only in your conversation with ${title}.`}
          </EmptyState>
        ) : (
          <ol class="messages" aria-label={`Messages in ${title}`}>
            {shown.map((m) => (
              <MessageItem key={m.id} message={m} sender={byId.get(m.from)} mine={m.from === me.id} />
            ))}
          </ol>
        )}
      </div>
      <Composer conversation={conversation} title={title} onSent={() => (atBottom.current = true)} />
    </div>
  )
}

function MessageItem({ message: m, sender, mine }: { message: Message; sender: Participant | undefined; mine: boolean }) {
  const name = sender?.name ?? m.from
  return (
    <li class={`message priority-${m.priority}${mine ? ' mine' : ''}`} data-testid="message" data-id={m.id} data-priority={m.priority} data-from={m.from}>
      <Avatar id={m.from} name={name} kind={sender?.kind} />
      <div class="message-body">
        <div class="message-meta">
          <span class="sender">{mine ? `${name} (you)` : name}</span>
          <KindBadge kind={sender?.kind} />
          <Time at={m.at} />
          {(m.priority === 'urgent' || m.priority === 'high') && <span class={`priority-label priority-${m.priority}`}>{m.priority}</span>}
        </div>
        <div class="message-content">{m.content}</div>
      </div>
    </li>
  )
}

function Composer({ conversation, title, onSent }: { conversation: Conversation; title: string; onSent: () => void }) {
  const { me } = useSpace()
  const { fail } = useToasts()
  const [text, setText] = useState('')
  const [priority, setPriority] = useState('normal')

  const send = (): void => {
    if (text.trim().length === 0) return
    try {
      const options = conversation.kind === 'channel' ? { channel: conversation.channel } : { to: conversation.with }
      me.send(text, { ...options, priority: asPriority(priority) })
      setText('')
      setPriority('normal')
      onSent()
    } catch (e) {
      fail(e)
    }
  }

  return (
    <form
      class="composer"
      onSubmit={(e) => {
        e.preventDefault()
        send()
      }}
    >
      <textarea
        data-testid="composer-input"
        aria-label={`Message ${conversation.kind === 'channel' ? `#${title}` : title}`}
        placeholder={`Message ${conversation.kind === 'channel' ? `#${title}` : title}  (Enter to send, Shift+Enter for a new line)`}
        rows={2}
        value={text}
        onInput={(e) => setText(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
            e.preventDefault()
            send()
          }
        }}
      />
      <div class="composer-actions">
        <label class="inline-field">
          <span class="visually-hidden">Priority</span>
          <select data-testid="composer-priority" class={`priority-select priority-${priority}`} value={priority} onChange={(e) => setPriority(e.currentTarget.value)}>
            <PriorityOptions />
          </select>
        </label>
        <button type="submit" class="button primary" data-testid="composer-send" disabled={text.trim().length === 0}>
          <Icon name="send" size={16} />
          Send
        </button>
      </div>
    </form>
  )
}

function usePageVisible(): boolean {
  const [visible, setVisible] = useState(() => document.visibilityState === 'visible')
  useEffect(() => {
    const update = (): void => setVisible(document.visibilityState === 'visible')
    document.addEventListener('visibilitychange', update)
    return () => document.removeEventListener('visibilitychange', update)
  }, [])
  return visible
}
