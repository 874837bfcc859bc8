import t from 'tap';
import { parseXml } from '../../../plugin/xdm/xml.js';

t.test('namespace-aware tree', async (t) => {
  const root = parseXml('<?xml version="1.0" encoding="UTF-8"?><a:r xmlns:a="urn:a" xmlns="urn:d" x="1" a:y="2"><c>t&amp;&#x41;&#66;<![CDATA[<z>]]></c><d/>é</a:r>', 1024);
  t.equal(root.ns, 'urn:a');
  t.equal(root.local, 'r');
  t.same(root.attrs, { x: '1', '{urn:a}y': '2' });
  t.equal(root.children.length, 2);
  t.equal(root.children[0]?.ns, 'urn:d');
  t.equal(root.children[0]?.local, 'c');
  t.equal(root.children[0]?.text, 't&AB<z>');
  t.equal(root.text, 'é');
});

t.test('coded errors', async (t) => {
  const cases: [string, string][] = [
    ['<!DOCTYPE r [<!ENTITY x "y">]><r>&x;</r>', 'XML_DTD_FORBIDDEN'],
    ['<!DOCTYPE r SYSTEM "file:///etc/passwd"><r/>', 'XML_DTD_FORBIDDEN'],
    ['<!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><r>&b;</r>', 'XML_DTD_FORBIDDEN'],
    ['<r>&nbsp;</r>', 'XML_NOT_WELL_FORMED'],
    ['<r>&x;</r>', 'XML_NOT_WELL_FORMED'],
    ['<r>', 'XML_NOT_WELL_FORMED'],
    ['<r></s>', 'XML_NOT_WELL_FORMED'],
    ['<r/><r/>', 'XML_NOT_WELL_FORMED'],
    ['not xml', 'XML_NOT_WELL_FORMED'],
    ['', 'XML_NOT_WELL_FORMED'],
    ['<p:r/>', 'XML_NOT_WELL_FORMED'],
    ['<r a="1" a="2"/>', 'XML_NOT_WELL_FORMED'],
    ['\u0000<r/>', 'XML_NOT_WELL_FORMED'],
    [`<r>${'<a>'.repeat(100)}${'</a>'.repeat(100)}</r>`, 'XML_NOT_WELL_FORMED'],
    [`<r>${'x'.repeat(2000)}</r>`, 'XML_TOO_LARGE'],
    [`<r>${'é'.repeat(600)}</r>`, 'XML_TOO_LARGE'],
  ];
  for (const [xml, code] of cases) t.throws(() => parseXml(xml, 1024), { name: 'XmlError', code }, `${xml.slice(0, 40)} -> ${code}`);
});
