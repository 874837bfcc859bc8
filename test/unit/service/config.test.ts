import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, parseConfig, ConfigError } from '../../../plugin/config/load.js';
import { defaultPolicy } from '../../../plugin/rules/policy.js';
import { tempDir } from './fixtures/helpers.js';
import { parseXml } from '../../../plugin/xdm/xml.js';
import { parseBlacklist, parseRuleset } from '../../../plugin/xdm/documents.js';
import { blacklistDoc, policyDoc } from '../../../lab/xdm.js';

t.test('defaults', async (t) => {
  const c = loadConfig({ env: {} });
  t.equal(c.host, '127.0.0.1');
  t.equal(c.rpcPort, 9090);
  t.equal(c.httpPort, 8080);
  t.equal(c.identity, 'user');
  t.equal(c.xdm.url, null);
  t.equal(c.xdm.document, 'index');
  t.equal(c.registrar.maxExpires, 7200);
  t.equal(c.registrar.minExpires, 60, "Kamailio registrar's min_expires default");
  t.same(c.policy, defaultPolicy);
});

t.test('file, then environment over it', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'pf.json');
  writeFileSync(
    file,
    JSON.stringify({ rpcPort: 1000, pfHost: 'pf.lab', policy: { foreignService: 'allow', allowAnonymity: false } }),
  );
  const c = loadConfig({
    file,
    env: { PF_RPC_PORT: '2000', PF_HTTP_PORT: '3000', PF_XDM_URL: 'http://127.0.0.1:1/xcap-root', PF_DATA_DIR: dir },
  });
  t.equal(c.rpcPort, 2000);
  t.equal(c.httpPort, 3000);
  t.equal(c.pfHost, 'pf.lab');
  t.equal(c.dataDir, dir);
  t.equal(c.xdm.url, 'http://127.0.0.1:1/xcap-root');
  t.equal(c.policy.foreignService, 'allow');
  t.equal(c.policy.mode, 'proxy');
  t.equal(c.policy.allowAnonymity, false);
  t.equal(c.policy.noSuitableDevice, defaultPolicy.noSuitableDevice);
  // PF_CONFIG names the file when no explicit one is given
  t.equal(loadConfig({ env: { PF_CONFIG: file } }).rpcPort, 1000);
});

const bad: ReadonlyArray<readonly [string, unknown, RegExp]> = [
  ['policy mode', { policy: { mode: 'relay' } }, /^config: \/policy\/mode must be one of proxy\|b2bua$/],
  ['B2BUA mode without the leg secret', { policy: { mode: 'b2bua' } }, /^config: \/b2bua\/legToken must have at least 16 characters/],
  ['one B2BUA user without the leg secret', { policy: { modeByUser: { 'sip:bob@example.net': 'b2bua' } } }, /^config: \/b2bua\/legToken/],
  ['b2bua multi-device policy', { b2bua: { multiDevice: 'D' } }, /^config: \/b2bua\/multiDevice must be one of A\|B\|C$/],
  ['b2bua session expires below RFC 4028 Min-SE', { b2bua: { sessionExpires: 60 } }, /^config: \/b2bua\/sessionExpires/],
  ['identity', { identity: 'host' }, /^config: \/identity must be one of user\|uri$/],
  ['port type', { rpcPort: '9090' }, /^config: \/rpcPort expected integer/],
  ['port range', { httpPort: 70000 }, /^config: \/httpPort .*65535/],
  ['unknown field', { rpcport: 1 }, /^config: \/rpcport is not a known field$/],
  ['unknown nested field', { xdm: { uri: 'x' } }, /^config: \/xdm\/uri is not a known field$/],
  ['xdm url scheme', { xdm: { url: 'ftp://x' } }, /^config: \/xdm\/url/],
  ['policy unknown field', { policy: { modes: 'proxy' } }, /^config: \/policy\/modes is not a known field$/],
  ['policy isf uri', { policy: { isfUri: 'http://isf' } }, /^config: \/policy\/isfUri/],
  ['expires order', { registrar: { defaultExpires: 9000, maxExpires: 100 } }, /defaultExpires must not exceed/],
  ['min expires order', { registrar: { minExpires: 4000 } }, /minExpires must not exceed/],
  ['min expires negative', { registrar: { minExpires: -1 } }, /^config: \/registrar\/minExpires/],
  ['not an object', [1, 2], /^config: \/ must be a JSON object$/],
];

for (const [name, raw, re] of bad) {
  t.test(`rejects: ${name}`, async (t) => {
    t.throws(() => parseConfig(raw), re);
    t.throws(() => parseConfig(raw), ConfigError);
  });
}

t.test('bad environment values and files', async (t) => {
  t.throws(() => loadConfig({ env: { PF_RPC_PORT: 'abc' } }), /PF_RPC_PORT=abc must be an integer/);
  t.throws(() => loadConfig({ env: { PF_POLICY_MODE: 'x' } }), /\/policy\/mode must be one of/);
  t.throws(() => loadConfig({ env: { PF_POLICY_MODE: 'b2bua' } }), /^config: \/b2bua\/legToken must have at least 16 characters/);
  const b2 = loadConfig({ env: { PF_POLICY_MODE: 'b2bua', PF_B2BUA_TOKEN: 'x'.repeat(16), PF_B2BUA_SIP_PORT: '5071', PF_B2BUA_MULTI_DEVICE: 'A' } });
  t.same([b2.policy.mode, b2.b2bua.sipPort, b2.b2bua.multiDevice], ['b2bua', 5071, 'A'], 'B2BUA mode from the environment');
  t.throws(() => loadConfig({ env: { PF_POLICY_DIAGNOSTIC_WARNING: 'yes' } }), /PF_POLICY_DIAGNOSTIC_WARNING=yes must be true or false/);
  const dir = tempDir(t);
  t.throws(() => loadConfig({ file: join(dir, 'missing.json'), env: {} }), /cannot read/);
  const broken = join(dir, 'broken.json');
  writeFileSync(broken, '{"rpcPort": 1,');
  t.throws(() => loadConfig({ file: broken, env: {} }), /is not valid JSON/);
  const arr = join(dir, 'arr.json');
  writeFileSync(arr, '[]');
  t.throws(() => loadConfig({ file: arr, env: {} }), /must hold a JSON object/);
});

t.test('the example config is valid', async (t) => {
  const c = loadConfig({ file: 'config/pf.example.json', env: {} });
  t.equal(c.rpcPort, 9090);
});

t.test('policy.diagnosticWarning: off by default, on from the environment', async (t) => {
  t.equal(loadConfig({ env: {} }).policy.diagnosticWarning, false);
  t.equal(loadConfig({ env: { PF_POLICY_DIAGNOSTIC_WARNING: 'true' } }).policy.diagnosticWarning, true);
  t.equal(loadConfig({ env: { PF_POLICY_DIAGNOSTIC_WARNING: 'false' } }).policy.diagnosticWarning, false);
});

t.test('config/examples: the XDM documents docs/lab.md PUTs, as the lab builds them, valid for the XDM parser', async (t) => {
  const policy = readFileSync('config/examples/policy.xml', 'utf8');
  const blacklist = readFileSync('config/examples/blacklist.xml', 'utf8');
  t.equal(policy, policyDoc({ dnd: true }), 'policy.xml: do-not-disturb on (lab/xdm.ts policyDoc)');
  t.equal(blacklist, blacklistDoc(['sip:spam@example.net', 'tel:+15550000002']), 'blacklist.xml (lab/xdm.ts blacklistDoc)');
  t.equal(parseRuleset(parseXml(policy, 1 << 20)).rules.length, 1);
  t.equal(parseBlacklist(parseXml(blacklist, 1 << 20), 'oma_blockedcontacts').keys.size, 2);
});
