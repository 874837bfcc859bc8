/** CPM identifiers (CR 8.3.2.1; docs/policy.md "On the wire"). */

export const ICSI_SESSION = 'urn:urn-7:3gpp-service.ims.icsi.oma.cpm.session';
export const ICSI_GROUP = 'urn:urn-7:3gpp-service.ims.icsi.oma.cpm.session.group';
/** CPM file transfer ICSI: a device with it can take an MSRP file-transfer stream (our mapping). */
export const ICSI_FILE_TRANSFER = 'urn:urn-7:3gpp-service.ims.icsi.oma.cpm.filetransfer';
/** RCS file transfer IARI: an alternative to the FT ICSI in `+g.3gpp.iari-ref` (our mapping). */
export const IARI_FILE_TRANSFER = 'urn:urn-7:3gpp-application.ims.iari.rcs.ft';

export const TAG_ICSI = '+g.3gpp.icsi-ref';
export const TAG_IARI = '+g.3gpp.iari-ref';
export const TAG_SIMPLE_IM = '+g.oma.sip-im';

export type SessionIcsi = typeof ICSI_SESSION | typeof ICSI_GROUP;

/** The two CPM session ICSIs, lower-cased (compare case-insensitively). */
export function cpmIcsiOf(value: string): SessionIcsi | null {
  // as sent, usually: no copy
  if (value === ICSI_SESSION) return ICSI_SESSION;
  if (value === ICSI_GROUP) return ICSI_GROUP;
  const v = value.trim().toLowerCase();
  if (v === ICSI_SESSION) return ICSI_SESSION;
  if (v === ICSI_GROUP) return ICSI_GROUP;
  return null;
}

/** The Warning header line of a PF rejection (CR 8.3.2.1; RFC 3261 §20.43, code 399). */
export function warningLine(pfHost: string, text: string): string {
  return `Warning: 399 ${pfHost} "${text}"\r\n`;
}
