/**
 * Which device: the key a registered device is stored under, and which registered
 * device answered a dialog. Pure functions over the device list.
 */
import type { Device } from './types.js';
import type { NameAddr } from '../sip/uri.js';

/** The key a device is stored under: its `+sip.instance` if any, else its Contact URI (RFC 5626 §4.2). */
export function deviceKey(d: Pick<Device, 'instance' | 'contact'>): string {
  return d.instance ?? d.contact;
}

/**
 * The device that answered a dialog, from the Contact of its 2xx: its `+sip.instance`
 * (RFC 5626 §4.2); without one, the registered device with that Contact URI or public
 * GRUU (RFC 5627 §5.1: a UA may use its GRUU as Contact) among `registered`, the served
 * user's devices; else the Contact URI itself.
 */
export function answeringDevice(contact: NameAddr, registered: readonly Device[]): string {
  const instance = contact.params['+sip.instance'];
  if (typeof instance === 'string') return instance;
  const device = registered.find((d) => d.contact === contact.uri || d.pubGruu === contact.uri);
  return device ? deviceKey(device) : contact.uri;
}
