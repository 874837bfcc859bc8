/**
 * REGISTER handling for the device registry (docs/jsonrpc.md `pf.register`): turns a
 * REGISTER into the devices to store. Kamailio's usrloc does not keep Contact feature
 * tags, so the plugin keeps them (RFC 3840 §9, RFC 5626 `+sip.instance`, RFC 5627 GRUU).
 */
import type { Device } from '../devices/types.js';
import type { SipMessage } from './message.js';

export type RegisterErrorCode = 'REGISTER_NOT_A_REGISTER' | 'REGISTER_BAD_TO' | 'REGISTER_BAD_CONTACT' | 'REGISTER_BAD_CSEQ' | 'REGISTER_MISSING_HEADER';

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
  /** Registrar maximum expiry, seconds. */
  readonly maxExpires: number;
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
      /** Contacts with expires 0, to remove: device keys (see `deviceKey`). */
      readonly remove: readonly string[];
    };

/** The key a device is stored under: its `+sip.instance` if any, else its Contact URI. */
export function deviceKey(d: Pick<Device, 'instance' | 'contact'>): string {
  return d.instance ?? d.contact;
}

/**
 * @throws RegisterError
 */
export function parseRegister(_msg: SipMessage, _src: string | null, _now: number, _opts: RegisterOptions): RegisterUpdate {
  throw new Error('not implemented');
}
