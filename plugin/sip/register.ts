/**
 * REGISTER handling for the device registry (docs/jsonrpc.md `pf.register`): turns a
 * REGISTER into the devices to store. Kamailio's usrloc does not keep Contact feature
 * tags, so the decision service keeps them (RFC 3840 §9, RFC 5626 `+sip.instance`, RFC 5627 GRUU).
 */
import type { Device, FeatureValue } from '../devices/types.js';
import { deviceKey } from '../devices/identity.js';
import type { SipMessage } from './message.js';
import { parseNameAddr, parseUri, type ParamValue } from './uri.js';
import type { RegisterErrorCode } from '../errors.js';


export class RegisterError extends Error {
  override readonly name = 'RegisterError';
  constructor(
    readonly code: RegisterErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface RegisterOptions {
  /** Registrar default expiry, seconds (Kamailio `registrar` `default_expires`). */
  readonly defaultExpires: number;
  /** Registrar maximum expiry, seconds (Kamailio `max_expires`; 0: no cap). */
  readonly maxExpires: number;
  /** Registrar minimum expiry, seconds (Kamailio `min_expires`, `min_expires_mode` 0: a
   * shorter non-zero expiry is raised to it; 0: no minimum). */
  readonly minExpires?: number;
  /** How a served-user key is built from the To URI (config `identity`): `user@domain` or `user` (+ `domain`). */
  readonly identity: 'uri' | 'user';
  /** Domain used when identity is `user`. */
  readonly domain: string;
}

export type RegisterUpdate =
  | {
      readonly kind: 'fetch'; // REGISTER without Contact: a query (RFC 3261 §10.2.3)
      readonly aor: string;
    }
  | {
      readonly kind: 'remove-all'; // Contact: * with Expires: 0 (RFC 3261 §10.2.2)
      readonly aor: string;
      readonly callId: string;
      readonly cseq: number;
    }
  | {
      readonly kind: 'update';
      readonly aor: string;
      /** Contacts with expires > 0, to add or refresh. */
      readonly upsert: readonly Device[];
      /** Contacts with expires 0, to remove: device keys (`deviceKey`, plugin/devices/identity.ts). */
      readonly remove: readonly string[];
    };

/** Canonical served-user key for a To/Request-URI (config `identity`). Null when not a SIP URI with a user. */
export function aorKey(uri: string, opts: Pick<RegisterOptions, 'identity' | 'domain'>): string | null {
  const u = parseUri(uri);
  if (!u || u.scheme === 'tel' || u.user === null || u.user === '') return null;
  const user = u.user.split(';')[0]!;
  return opts.identity === 'user' ? `sip:${user}@${opts.domain.toLowerCase()}` : `sip:${user}@${u.host}`;
}

const DIGITS = /^[0-9]{1,10}$/;

function seconds(v: ParamValue | string | undefined): number | null {
  if (typeof v !== 'string') return null;
  const t = v.trim();
  return DIGITS.test(t) ? Number(t) : null;
}

/** `+sip.instance` value as stored: unquoted, with angle brackets (RFC 5626 §4.1). */
function instanceOf(v: ParamValue | undefined): string | null {
  if (typeof v !== 'string') return null;
  const t = v.trim();
  if (!t) return null;
  return t.startsWith('<') && t.endsWith('>') ? t : `<${t}>`;
}

/**
 * Turn a REGISTER into a registry update (RFC 3261 §10.3). Expiry per contact: its
 * `expires` param, else the Expires header, else `defaultExpires`; capped at
 * `maxExpires`, and a non-zero one raised to `minExpires`, as Kamailio's registrar does. A public GRUU (RFC 5627 §5.3) is recorded, as Kamailio's registrar
 * builds it, when the REGISTER says `Supported: gruu` and the contact has `+sip.instance`.
 * @throws RegisterError
 */
export function parseRegister(msg: SipMessage, src: string | null, now: number, opts: RegisterOptions): RegisterUpdate {
  if (msg.kind !== 'request' || msg.method !== 'REGISTER') {
    throw new RegisterError('REGISTER_NOT_A_REGISTER', 'not a REGISTER request');
  }
  const to = msg.get('To');
  if (to === undefined) throw new RegisterError('REGISTER_MISSING_HEADER', 'REGISTER without To');
  const toAddr = parseNameAddr(to);
  const aor = toAddr ? aorKey(toAddr.uri, opts) : null;
  if (!aor) throw new RegisterError('REGISTER_BAD_TO', 'To is not a SIP URI with a user part');

  const contacts = msg.getValues('Contact');
  if (contacts.length === 0) return { kind: 'fetch', aor };

  const callId = msg.get('Call-ID');
  if (callId === undefined) throw new RegisterError('REGISTER_MISSING_HEADER', 'REGISTER without Call-ID');
  const cseqMatch = /^([0-9]{1,10})\s+REGISTER$/i.exec(msg.get('CSeq') ?? '');
  if (!cseqMatch) throw new RegisterError('REGISTER_BAD_CSEQ', 'CSeq is not "<number> REGISTER"');
  const cseq = Number(cseqMatch[1]);

  const headerExpires = msg.get('Expires');
  const defaultExp = headerExpires === undefined ? opts.defaultExpires : seconds(headerExpires);
  if (defaultExp === null) throw new RegisterError('REGISTER_BAD_CONTACT', 'Expires is not a number');

  // RFC 3261 §10.2.2: "Contact: *" only alone and only with Expires: 0.
  if (contacts.some((c) => c === '*')) {
    if (contacts.length !== 1 || defaultExp !== 0) {
      throw new RegisterError('REGISTER_BAD_CONTACT', 'Contact: * needs Expires: 0 and no other contact');
    }
    return { kind: 'remove-all', aor, callId, cseq };
  }

  const gruu = msg.getValues('Supported').some((s) => s.toLowerCase() === 'gruu');
  const path: string[] = [];
  for (const p of msg.getValues('Path')) {
    const na = parseNameAddr(p);
    if (!na) throw new RegisterError('REGISTER_BAD_CONTACT', 'unreadable Path');
    path.push(na.uri);
  }

  const upsert: Device[] = [];
  const remove: string[] = [];
  for (const c of contacts) {
    const na = parseNameAddr(c);
    if (!na) throw new RegisterError('REGISTER_BAD_CONTACT', 'unreadable Contact');
    let expires = defaultExp;
    let q = 1;
    const params: Record<string, FeatureValue> = {};
    for (const [k, v] of Object.entries(na.params)) {
      if (k === 'expires') {
        const e = seconds(v);
        if (e === null) throw new RegisterError('REGISTER_BAD_CONTACT', 'Contact expires is not a number');
        expires = e;
      } else if (k === 'q') {
        const qv = typeof v === 'string' ? Number(v) : NaN;
        if (!(qv >= 0 && qv <= 1)) throw new RegisterError('REGISTER_BAD_CONTACT', 'Contact q is not in 0..1');
        q = qv;
      } else params[k] = v;
    }
    if (opts.maxExpires > 0) expires = Math.min(expires, opts.maxExpires);
    if (expires > 0 && opts.minExpires !== undefined && expires < opts.minExpires) expires = opts.minExpires;
    const instance = instanceOf(na.params['+sip.instance']);
    if (expires === 0) {
      remove.push(deviceKey({ instance, contact: na.uri }));
      continue;
    }
    upsert.push({
      aor,
      instance,
      contact: na.uri,
      params,
      q,
      pubGruu: gruu && instance ? `${aor};gr=${instance.slice(1, -1)}` : null,
      received: src,
      path,
      callId,
      cseq,
      registeredAt: now,
      expiresAt: now + expires * 1000,
    });
  }
  return { kind: 'update', aor, upsert, remove };
}
