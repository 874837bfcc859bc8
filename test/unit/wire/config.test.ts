// wire/config.ts: the loader both processes use (file, environment, flags, schema).
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import { ConfigError, applySettings, checkConfig, envSettings, loadLayers, type EnvTable, type JsonObject } from '../../../wire/config.js';

const Schema = Type.Object(
  {
    name: Type.String({ minLength: 1, default: 'x' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 10, errorMessage: 'must be a port number' }),
    count: Type.Integer({ minimum: 1, default: 1 }),
    mode: Type.Union([Type.Literal('a'), Type.Literal('b')], { default: 'a' }),
    tags: Type.Array(Type.String(), { default: [] }),
    inner: Type.Object({ depth: Type.Integer({ default: 3 }) }, { additionalProperties: false, default: {} }),
  },
  { additionalProperties: false },
);

const ENV: EnvTable = [
  ['T_NAME', ['name'], 'string'],
  ['T_PORT', ['port'], 'int'],
  ['T_COUNT', ['count'], 'int'],
  ['T_TAGS', ['tags'], 'list'],
  ['T_DEPTH', ['inner', 'depth'], 'int'],
];

t.test('defaults, and each kind of bad field named', async (t) => {
  t.same(checkConfig(Schema, {}), { name: 'x', port: 10, count: 1, mode: 'a', tags: [], inner: { depth: 3 } });
  const bad: ReadonlyArray<readonly [unknown, RegExp]> = [
    [[], /^config: \/ must be a JSON object$/],
    [{ port: 70000 }, /^config: \/port must be a port number$/],
    [{ port: 'x' }, /^config: \/port must be a port number$/],
    [{ count: 0 }, /^config: \/count expected integer to be greater or equal to 1$/],
    [{ mode: 'c' }, /^config: \/mode must be one of a\|b$/],
    [{ extra: 1 }, /^config: \/extra is not a known field$/],
    [{ inner: { deep: 1 } }, /^config: \/inner\/deep is not a known field$/],
  ];
  for (const [raw, re] of bad) t.throws(() => checkConfig(Schema, raw), { name: 'ConfigError', code: 'CONFIG_INVALID', message: re }, JSON.stringify(raw));
});

t.test('environment and overrides: text to JSON, later wins, errors name the source', async (t) => {
  const env = { T_NAME: 'n', T_PORT: '20', T_TAGS: 'a, b', T_DEPTH: '5', T_COUNT: '' };
  const root: JsonObject = {};
  applySettings(root, envSettings(env, ENV), Schema);
  t.same(root, { name: 'n', port: 20, tags: ['a', 'b'], inner: { depth: 5 } }, 'empty variables are unset');
  applySettings(root, [{ source: '--port', path: ['port'], kind: 'int', text: '30' }], Schema);
  t.equal(root.port, 30);
  t.throws(() => applySettings({}, [{ source: 'T_PORT', path: ['port'], kind: 'int', text: 'x' }], Schema),
    { message: 'config: T_PORT=x: /port must be a port number' }, 'the field\'s own message');
  t.throws(() => applySettings({}, [{ source: 'T_COUNT', path: ['count'], kind: 'int', text: '-1' }], Schema),
    { message: 'config: T_COUNT=-1 must be an integer' });
});

t.test('file, then environment, then overrides', async (t) => {
  const dir = t.testdir();
  const file = join(dir, 'c.json');
  writeFileSync(file, JSON.stringify({ name: 'file', port: 1, count: 2 }));
  const c = loadLayers(Schema, {
    file, env: { T_PORT: '2', T_COUNT: '3' }, envTable: ENV,
    overrides: [{ source: '--count', path: ['count'], kind: 'int', text: '4' }],
  });
  t.same([c.name, c.port, c.count], ['file', 2, 4]);
  t.same(loadLayers(Schema, { file: '', env: {}, envTable: ENV }).name, 'x', 'no file: defaults');
  writeFileSync(file, '[1]');
  t.throws(() => loadLayers(Schema, { file, env: {}, envTable: ENV }), /must hold a JSON object/);
  writeFileSync(file, '{');
  t.throws(() => loadLayers(Schema, { file, env: {}, envTable: ENV }), /is not valid JSON/);
  t.throws(() => loadLayers(Schema, { file: join(dir, 'none.json'), env: {}, envTable: ENV }), ConfigError);
});
