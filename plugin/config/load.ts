/**
 * Load the config once: JSON file (optional) + environment, defaults applied, then
 * validated. Any problem throws ConfigError naming the field (docs/service.md).
 */
import { readFileSync } from 'node:fs';
import { Value, type ValueError } from '@sinclair/typebox/value';
import { ValueErrorType } from '@sinclair/typebox/errors';
import type { TSchema } from '@sinclair/typebox';
import { ConfigSchema, type Config } from './schema.js';
import { resolvePolicy } from './policy.js';
import type { Static } from '@sinclair/typebox';

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  override readonly name = 'ConfigError';
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

/** Environment variable -> config path and how to read it. */
const ENV: ReadonlyArray<readonly [string, readonly string[], 'int' | 'string']> = [
  ['PF_HOST', ['host'], 'string'],
  ['PF_RPC_PORT', ['rpcPort'], 'int'],
  ['PF_HTTP_PORT', ['httpPort'], 'int'],
  ['PF_PF_HOST', ['pfHost'], 'string'],
  ['PF_DOMAIN', ['domain'], 'string'],
  ['PF_IDENTITY', ['identity'], 'string'],
  ['PF_DATA_DIR', ['dataDir'], 'string'],
  ['PF_LOG_LEVEL', ['logLevel'], 'string'],
  ['PF_XDM_URL', ['xdm', 'url'], 'string'],
  ['PF_POLICY_MODE', ['policy', 'mode'], 'string'],
];

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function setPath(root: JsonObject, path: readonly string[], value: Json): void {
  let node = root;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (isObject(next)) node = next;
    else {
      const fresh: JsonObject = {};
      node[key] = fresh;
      node = fresh;
    }
  }
  node[path[path.length - 1] as string] = value;
}

function describe(err: ValueError): string {
  const where = err.path === '' ? '/' : err.path;
  const schema: TSchema = err.schema;
  const literals = Array.isArray(schema.anyOf)
    ? (schema.anyOf as TSchema[]).map((s) => s.const as unknown).filter((c) => c !== undefined)
    : [];
  if (err.type === ValueErrorType.Union && literals.length > 0) {
    return `config: ${where} must be one of ${literals.map(String).join('|')}`;
  }
  if (err.type === ValueErrorType.ObjectAdditionalProperties) {
    return `config: ${where} is not a known field`;
  }
  return `config: ${where} ${err.message.charAt(0).toLowerCase()}${err.message.slice(1)}`;
}

/** Validate a raw object (after env overrides), applying defaults. */
export function parseConfig(raw: unknown): Config {
  if (!isObject(raw)) throw new ConfigError('config: / must be a JSON object');
  const withDefaults = Value.Default(ConfigSchema, Value.Clone(raw));
  const first = Value.Errors(ConfigSchema, withDefaults).First();
  if (first) throw new ConfigError(describe(first));
  // Cross-field rules the schema cannot say.
  const cfg = withDefaults as Static<typeof ConfigSchema>;
  if (cfg.registrar.minExpires > cfg.registrar.defaultExpires) {
    throw new ConfigError('config: /registrar/minExpires must not exceed /registrar/defaultExpires');
  }
  if (cfg.registrar.defaultExpires > cfg.registrar.maxExpires) {
    throw new ConfigError('config: /registrar/defaultExpires must not exceed /registrar/maxExpires');
  }
  return { ...cfg, policy: resolvePolicy(cfg.policy) };
}

export interface LoadOptions {
  /** Config file; default `env.PF_CONFIG`; none means defaults + env only. */
  readonly file?: string | undefined;
  readonly env?: NodeJS.ProcessEnv;
}

export function loadConfig(opts: LoadOptions = {}): Config {
  const env = opts.env ?? process.env;
  const file = opts.file ?? env.PF_CONFIG;
  let raw: Json = {};
  if (file !== undefined && file !== '') {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`config: cannot read ${file}: ${(err as Error).message}`);
    }
    try {
      raw = JSON.parse(text) as Json;
    } catch (err) {
      throw new ConfigError(`config: ${file} is not valid JSON: ${(err as Error).message}`);
    }
    if (!isObject(raw)) throw new ConfigError(`config: ${file} must hold a JSON object`);
  }
  const merged: JsonObject = isObject(raw) ? raw : {};
  for (const [name, path, kind] of ENV) {
    const v = env[name];
    if (v === undefined || v === '') continue;
    if (kind === 'int') {
      if (!/^\d+$/.test(v)) throw new ConfigError(`config: ${name}=${v} must be an integer`);
      setPath(merged, path, Number(v));
    } else {
      setPath(merged, path, v);
    }
  }
  return parseConfig(merged);
}
