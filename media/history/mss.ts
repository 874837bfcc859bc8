// The Message Storage Server interface (CR 8.5; docs/history.md): what the relay records
// through, and what both stores implement, the embedded LMDB store (store.ts) and the
// IMAP client of a real MSS (imap-store.ts). One interface test suite runs against both
// (test/media/history/interface.test.ts).
//
// Layout, the same in both (docs/history.md "Layout"):
//   <Conversation-ID>/                 conversation folder
//     <Contribution-ID>/               session history folder
//       session info object            Application/X-CPM-Session, stored once, when the folder is created
//       message/cpim objects           each chat message and disposition notification, in order
//       group state objects            application/group-state-object+xml, group sessions only

export const SESSION_INFO_TYPE = 'Application/X-CPM-Session';
export const CPIM_OBJECT_TYPE = 'message/cpim';
export const GROUP_STATE_TYPE = 'application/group-state-object+xml';

export interface FolderRef {
  readonly conversationId: string;
  readonly contributionId: string;
}

export interface SessionInfo {
  readonly from?: string;
  readonly to?: string;
  readonly callId?: string;
  readonly startedAt?: string;
}

/** The served user's view (docs/history.md): from the originator `received`, from a device `sent`. */
export type Direction = 'received' | 'sent';

export interface AppendOptions {
  readonly direction?: Direction;
  /**
   * Idempotency key, unique per object (the write queue gives one to each entry). With
   * `retry`, a store that already holds an object with this key returns its UID instead
   * of storing a second copy.
   */
  readonly key?: string;
  /** An earlier attempt with this key may have been stored (a retry, or a queue reopened). */
  readonly retry?: boolean;
  /** When the relay saw the message; default now. */
  readonly date?: Date;
}

export interface StoredObject {
  /** Per session folder, increasing (the IMAP UID). */
  readonly uid: number;
  readonly contentType: string;
  readonly data: Buffer;
  /** ISO time of storage. */
  readonly storedAt: string;
  /** The idempotency key it was stored with, if any. */
  readonly key?: string;
  /** Set when the stored object could not be read whole (docs/history.md "Bad input"); `data` is then empty. */
  readonly problem?: 'too-large' | 'malformed';
}

/** One object to append (appendMany). */
export interface AppendItem {
  readonly ref: FolderRef;
  readonly contentType: string;
  readonly data: Buffer;
  readonly opts?: AppendOptions;
}

/** What the relay writes through (media/relay/history-recorder.ts); results are not read. */
export interface HistoryWriter {
  /** CR 8.5: ensure the session folder exists; on creation store the session info object. */
  ensureSessionFolder(ref: FolderRef, info: SessionInfo): Promise<unknown>;
  /** One message/cpim (or group state) object. */
  append(ref: FolderRef, contentType: string, data: Buffer, opts?: AppendOptions): Promise<unknown>;
  /**
   * Several objects, stored in this order, as one write where the store has one (the LMDB
   * store: one transaction; the write queue: one commit of its file). The relay hands over
   * each event-loop turn's messages this way (docs/history.md "Where the cost of history goes").
   */
  appendMany(items: readonly AppendItem[]): Promise<unknown>;
  close(): Promise<void>;
}

export interface MessageStore extends HistoryWriter {
  /**
   * CR 8.5 (step 8a): look the folder up first; create it and store the session info
   * object only when it is missing. `created` says the info object was stored now.
   */
  ensureSessionFolder(ref: FolderRef, info: SessionInfo): Promise<{ created: boolean; infoUid: number }>;
  /** Returns the object's UID. */
  append(ref: FolderRef, contentType: string, data: Buffer, opts?: AppendOptions): Promise<number>;
  /** Returns the objects' UIDs, in order. */
  appendMany(items: readonly AppendItem[]): Promise<number[]>;
  /** The folder's objects in UID order; [] when there is no such folder. */
  list(ref: FolderRef): Promise<StoredObject[]>;
  /** Session folders (Contribution-IDs) of a conversation, sorted. */
  sessions(conversationId: string): Promise<string[]>;
}

/**
 * A failed store operation. `permanent`: retrying the same request cannot succeed (a name
 * the server refuses, an object over its limits); the write queue sets such an entry aside
 * after a few attempts instead of retrying it forever (docs/history.md "Write queue").
 */
export class MssError extends Error {
  override readonly name = 'MssError';
  constructor(
    message: string,
    readonly permanent: boolean,
    override readonly cause?: unknown,
  ) {
    super(message);
  }
}

/** The session info object's text (docs/history.md "Session info object"). */
export function formatSessionInfo(ref: FolderRef, info: SessionInfo): string {
  const lines = [
    `Conversation-ID: ${ref.conversationId}`,
    `Contribution-ID: ${ref.contributionId}`,
    ...(info.from ? [`From: ${info.from}`] : []),
    ...(info.to ? [`To: ${info.to}`] : []),
    ...(info.callId ? [`Call-ID: ${info.callId}`] : []),
    `DateTime: ${info.startedAt ?? new Date().toISOString()}`,
  ];
  return `${lines.join('\r\n')}\r\n`;
}

export interface GroupParticipant {
  readonly uri: string;
  readonly name?: string;
}

/** A Group State Object (docs/history.md "Group state object"). */
export function formatGroupState(o: {
  readonly contributionId: string;
  readonly focus: string;
  readonly participants: readonly GroupParticipant[];
  readonly at?: Date;
}): string {
  const parts = o.participants.map(p =>
    `  <participant${p.name !== undefined ? ` name="${xmlAttr(p.name)}"` : ''} comm-addr="${xmlAttr(p.uri)}"/>`);
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<groupstate timestamp="${(o.at ?? new Date()).toISOString()}" lastfocussessionid="${xmlAttr(o.focus)}" contributionid="${xmlAttr(o.contributionId)}">`,
    ...parts,
    '</groupstate>',
    '',
  ].join('\r\n');
}

function xmlAttr(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
