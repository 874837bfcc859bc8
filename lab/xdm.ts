/** XDM documents for the integration tests and the lab's demo users (CR 8.4.1; docs/policy.md "XDM documents"). */

/**
 * The policy of `npm run lab` (docs/lab.md): versions OMA2.0-2.2, anonymous invitations
 * rejected, and the diagnostic Warning on bare rejections (docs/policy.md).
 */
export const LAB_POLICY = { supportedVersions: ['OMA2.0', 'OMA2.1', 'OMA2.2'], allowAnonymity: false, diagnosticWarning: true };

export const RESOURCE_LISTS = 'application/resource-lists+xml';
export const AUTH_POLICY = 'application/auth-policy+xml';

export function blacklistDoc(entries: readonly string[], list = 'oma_blockedcontacts'): string {
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">',
    `  <list name="${list}">`,
    ...entries.map((e) => `    <entry uri="${e}"/>`),
    '  </list>',
    '</resource-lists>',
    '',
  ].join('\n');
}

/** A common-policy ruleset with one CPM rule for everybody (RFC 4745, OMA extensions). */
export function policyDoc(o: { dnd: boolean; offlineStorage?: boolean }): string {
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<cp:ruleset xmlns:cp="urn:ietf:params:xml:ns:common-policy"',
    '            xmlns:ocp="urn:oma:xml:xdm:common-policy"',
    '            xmlns:oxe="urn:oma:xml:xdm:extensions">',
    '  <cp:rule id="cpm-all">',
    '    <cp:conditions>',
    '      <ocp:other-identity/>',
    '      <oxe:service-list><oxe:service enabler="CPM"/></oxe:service-list>',
    '    </cp:conditions>',
    '    <cp:actions>',
    `      <oxe:allow-do-not-disturb>${String(o.dnd)}</oxe:allow-do-not-disturb>`,
    `      <oxe:allow-offline-storage>${String(o.offlineStorage ?? false)}</oxe:allow-offline-storage>`,
    '    </cp:actions>',
    '  </cp:rule>',
    '</cp:ruleset>',
    '',
  ].join('\n');
}
