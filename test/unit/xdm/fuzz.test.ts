/** Mutated XDM documents: only coded errors escape parseXml / parseBlacklist / parseRuleset. */
import t from 'tap';
import { parseXml, XmlError } from '../../../plugin/xdm/xml.js';
import { parseBlacklist, parseRuleset, XdmDocumentError } from '../../../plugin/xdm/documents.js';
import { mutate, rng } from '../../../bench/fuzz-sip-lib.js';

const DOCS = [
  '<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list name="oma_blockedcontacts"><entry uri="sip:spam@example.net"/><entry uri="tel:+15550000002"/></list></resource-lists>',
  '<cp:ruleset xmlns:cp="urn:ietf:params:xml:ns:common-policy" xmlns:oxe="urn:oma:xml:xdm:extensions"><cp:rule id="a"><cp:conditions><cp:identity><cp:many domain="x"><cp:except id="sip:a@x"/></cp:many></cp:identity><oxe:service-list><oxe:service enabler="CPM"/></oxe:service-list><cp:validity><cp:from>2026-01-01T00:00:00Z</cp:from><cp:until>2027-01-01T00:00:00Z</cp:until></cp:validity></cp:conditions><cp:actions><oxe:allow-do-not-disturb>true</oxe:allow-do-not-disturb></cp:actions></cp:rule></cp:ruleset>',
];

t.test('5,000 mutated documents', async (t) => {
  const r = rng(99);
  const outcomes: Record<string, number> = {};
  for (let i = 0; i < 5000; i++) {
    const text = mutate(DOCS[i % 2]!, r);
    let outcome: string;
    try {
      const root = parseXml(text, 4096);
      try {
        if (i % 2 === 0) parseBlacklist(root, 'oma_blockedcontacts');
        else parseRuleset(root);
        outcome = 'parsed';
      } catch (err) {
        if (!(err instanceof XdmDocumentError)) throw err;
        outcome = err.code;
      }
    } catch (err) {
      if (!(err instanceof XmlError)) {
        t.fail(`unexpected ${String(err)} for ${JSON.stringify(text)}`);
        continue;
      }
      outcome = err.code;
    }
    outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
  }
  t.ok((outcomes['parsed'] ?? 0) > 0 && (outcomes['XML_NOT_WELL_FORMED'] ?? 0) > 0, JSON.stringify(outcomes));
});
