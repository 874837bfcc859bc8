/**
 * Configuration loading shared by the decision service (plugin/config/load.ts) and the
 * relay (media/config/load.ts): one JSON file, then environment variables, then (relay only)
 * command-line flags, each overriding the one before; defaults from the TypeBox schema;
 * the first problem throws ConfigError naming the field (`config: /path ...`).
 * A schema node may carry `errorMessage` (for example "must be a port number"): it is
 * used for every error on that node, and for an env or flag value that is not a number.
 */
import { readFileSync } from 'node:fs';
import type { Static, TSchema } from '@sinclair/typebox';
import { Value, type ValueError } from '@sinclair/typebox/value';
import { ValueErrorType } from '@sinclair/typebox/errors';
import { WireErrorCode } from './errors.js';

export class ConfigError extends Error {
  readonly code = WireErrorCode.ConfigInvalid;
  override readonly name = 'ConfigError';
}

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

/** How a text value (environment, flag) becomes a JSON value. */
export type TextKind = 'int' | 'string' | 'list' | 'bool';

/** Environment variable -> config path and how to read it. */
export type EnvTable = ReadonlyArray<readonly [name: string, path: readonly string[], kind: TextKind]>;

/** One text value for a config path; `source` names it in messages (`PF_RPC_PORT`, `--msrp-port`). */
export interface TextSetting {
  readonly source: string;
  readonly path: readonly string[];
  readonly kind: TextKind;
  readonly text: string;
}

export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The JSON object in `file`, or ConfigError (cannot read, not JSON, not an object). */
function readJsonObjectFile(file: string): JsonObject {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`config: cannot read ${file}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config: ${file} is not valid JSON: ${(err as Error).message}`);
  }
  if (!isJsonObject(raw)) throw new ConfigError(`config: ${file} must hold a JSON object`);
  return raw;
}

/** The set (non-empty) variables of `table`, as settings. */
export function envSettings(env: NodeJS.ProcessEnv, table: EnvTable): TextSetting[] {
  const out: TextSetting[] = [];
  for (const [name, path, kind] of table) {
    const text = env[name];
    if (text !== undefined && text !== '') out.push({ source: name, path, kind, text });
  }
  return out;
}

/** The schema node at `path` (through object properties), if any. */
function schemaAt(schema: TSchema, path: readonly string[]): TSchema | undefined {
  let node: TSchema | undefined = schema;
  for (const key of path) {
    const props = node?.properties as Record<string, TSchema> | undefined;
    node = props?.[key];
  }
  return node;
}

function pointer(path: readonly string[]): string {
  return `/${path.join('/')}`;
}

function setPath(root: JsonObject, path: readonly string[], value: Json): void {
  let node = root;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (isJsonObject(next)) node = next;
    else {
      const fresh: JsonObject = {};
      node[key] = fresh;
      node = fresh;
    }
  }
  node[path[path.length - 1] as string] = value;
}

/** Write each setting into `root` (later ones win); a non-number for an `int` throws. */
export function applySettings(root: JsonObject, settings: readonly TextSetting[], schema: TSchema): void {
  for (const s of settings) {
    if (s.kind === 'int') {
      if (!/^\d+$/.test(s.text)) {
        const custom = schemaAt(schema, s.path)?.errorMessage;
        throw new ConfigError(
          typeof custom === 'string'
            ? `config: ${s.source}=${s.text}: ${pointer(s.path)} ${custom}`
            : `config: ${s.source}=${s.text} must be an integer`,
        );
      }
      setPath(root, s.path, Number(s.text));
    } else if (s.kind === 'bool') {
      if (s.text !== 'true' && s.text !== 'false') throw new ConfigError(`config: ${s.source}=${s.text} must be true or false`);
      setPath(root, s.path, s.text === 'true');
    } else if (s.kind === 'list') {
      setPath(root, s.path, s.text.split(',').map((x) => x.trim()));
    } else {
      setPath(root, s.path, s.text);
    }
  }
}

function describe(err: ValueError): string {
  const where = err.path === '' ? '/' : err.path;
  const schema: TSchema = err.schema;
  if (typeof schema.errorMessage === 'string') return `config: ${where} ${schema.errorMessage}`;
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

/** Apply the schema's defaults to a copy of `raw` and validate it; ConfigError names the first bad field. */
export function checkConfig<S extends TSchema>(schema: S, raw: unknown): Static<S> {
  if (!isJsonObject(raw)) throw new ConfigError('config: / must be a JSON object');
  const withDefaults: unknown = Value.Default(schema, Value.Clone(raw));
  const first = Value.Errors(schema, withDefaults).First();
  if (first) throw new ConfigError(describe(first));
  return withDefaults as Static<S>;
}

export interface LoadLayersOptions {
  /** JSON config file; none or empty: defaults plus the other layers only. */
  readonly file?: string | undefined;
  readonly env: NodeJS.ProcessEnv;
  readonly envTable: EnvTable;
  /** Applied after the environment (command-line flags). */
  readonly overrides?: readonly TextSetting[];
}

/** File, then environment, then overrides, validated against `schema` with its defaults. */
export function loadLayers<S extends TSchema>(schema: S, opts: LoadLayersOptions): Static<S> {
  const raw = opts.file !== undefined && opts.file !== '' ? readJsonObjectFile(opts.file) : {};
  applySettings(raw, [...envSettings(opts.env, opts.envTable), ...(opts.overrides ?? [])], schema);
  return checkConfig(schema, raw);
}
