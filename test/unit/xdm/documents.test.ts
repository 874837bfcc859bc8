import t from 'tap';
import { parseXml } from '../../../plugin/xdm/xml.js';
import { parseBlacklist, parseRuleset } from '../../../plugin/xdm/documents.js';

const RL = 'urn:ietf:params:xml:ns:resource-lists';

t.test('blacklist: the named list, nested lists, identity keys', async (t) => {
  const doc = parseXml(
    `<resource-lists xmlns="${RL}">
      <list name="friends"><entry uri="sip:friend@example.net"/></list>
      <list name="oma_blockedcontacts">
        <entry uri="sip:spam@EXAMPLE.net"><display-name>Spam</display-name></entry>
        <entry uri="tel:+1-555-000-0002"/>
        <entry uri="mailto:x@y"/>
        <entry/>
        <entry-ref ref="x"/>
        <list name="sub"><entry uri="sip:+15550000003@example.net;user=phone"/></list>
      </list>
    </resource-lists>`,
    1 << 16,
  );
  const bl = parseBlacklist(doc, 'oma_blockedcontacts');
  t.same([...bl.keys].sort(), ['sip:spam@example.net', 'tel:+15550000002', 'tel:+15550000003']);
  t.equal(parseBlacklist(doc, 'missing').keys.size, 0, 'list absent: empty blacklist');
});

t.test('ruleset: RFC 4745 rules with OMA extensions by local name', async (t) => {
  const doc = parseXml(
    `<cp:ruleset xmlns:cp="urn:ietf:params:xml:ns:common-policy" xmlns:ocp="urn:oma:xml:xdm:common-policy" xmlns:oxe="urn:oma:xml:xdm:extensions" xmlns:other="urn:vendor:x">
      <cp:rule id="cpm-dnd">
        <cp:conditions>
          <ocp:other-identity/>
          <other:service-list><other:service enabler="CPM"/></other:service-list>
        </cp:conditions>
        <cp:actions>
          <oxe:allow-do-not-disturb>true</oxe:allow-do-not-disturb>
          <other:allow-offline-storage> 1 </other:allow-offline-storage>
        </cp:actions>
      </cp:rule>
      <cp:rule id="ids">
        <cp:conditions>
          <cp:identity><cp:one id="sip:a@x.net"/><cp:many domain="Y.net"><cp:except id="sip:b@y.net"/><cp:except domain="z.net"/></cp:many></cp:identity>
          <cp:validity><cp:from>2026-01-01T00:00:00Z</cp:from><cp:until>2026-02-01T00:00:00Z</cp:until></cp:validity>
          <cp:sphere value="work"/>
        </cp:conditions>
        <cp:actions/>
      </cp:rule>
      <cp:rule id="no-conditions"/>
    </cp:ruleset>`,
    1 << 16,
  );
  const rs = parseRuleset(doc);
  t.equal(rs.rules.length, 3);
  t.same(rs.rules[0], {
    id: 'cpm-dnd',
    conditions: { identity: null, otherIdentity: true, anonymousRequest: false, serviceEnablers: ['CPM'], validity: null, unsupported: [] },
    actions: { allowDoNotDisturb: true, allowOfflineStorage: true },
  });
  t.same(rs.rules[1]?.conditions, {
    identity: { one: ['sip:a@x.net'], many: [{ domain: 'y.net', exceptIds: ['sip:b@y.net'], exceptDomains: ['z.net'] }] },
    otherIdentity: false,
    anonymousRequest: false,
    serviceEnablers: null,
    validity: [{ from: Date.UTC(2026, 0, 1), until: Date.UTC(2026, 1, 1) }],
    unsupported: ['sphere'],
  });
  t.same(rs.rules[2]?.actions, { allowDoNotDisturb: false, allowOfflineStorage: false });
});

t.test('valid XML, wrong schema: coded error', async (t) => {
  const cases: [string, 'bl' | 'rs'][] = [
    ['<ruleset xmlns="urn:ietf:params:xml:ns:common-policy"/>', 'bl'],
    [`<resource-lists xmlns="urn:wrong"/>`, 'bl'],
    ['<resource-lists/>', 'bl'],
    [`<resource-lists xmlns="${RL}"/>`, 'rs'],
    ['<ruleset xmlns="urn:wrong"/>', 'rs'],
    ['<html><body>404</body></html>', 'rs'],
  ];
  for (const [xml, kind] of cases) {
    const root = parseXml(xml, 4096);
    t.throws(() => (kind === 'bl' ? parseBlacklist(root, 'oma_blockedcontacts') : parseRuleset(root)), { name: 'XdmDocumentError', code: 'XDM_WRONG_SCHEMA' }, xml);
  }
});
