/**
 * Load the config once: JSON file (optional) + environment, defaults applied, then
 * validated (the generic part is wire/config.ts). Any problem throws ConfigError naming
 * the field (docs/service.md).
 */
import type { Static } from '@sinclair/typebox';
import { ConfigError, checkConfig, loadLayers, type EnvTable } from '../../wire/config.js';
import { ConfigSchema, type Config } from './schema.js';
import { peerList } from '../../wire/server.js';
import { resolvePolicy } from './policy.js';
import type { Policy } from '../rules/policy.js';

export { ConfigError };

/** Environment variable -> config path and how to read it. */
const ENV: EnvTable = [
  ['PF_HOST', ['host'], 'string'],
  ['PF_RPC_PORT', ['rpcPort'], 'int'],
  ['PF_HTTP_PORT', ['httpPort'], 'int'],
  ['PF_PF_HOST', ['pfHost'], 'string'],
  ['PF_DOMAIN', ['domain'], 'string'],
  ['PF_IDENTITY', ['identity'], 'string'],
  ['PF_DATA_DIR', ['dataDir'], 'string'],
  ['PF_LOG_LEVEL', ['logLevel'], 'string'],
  ['PF_RPC_ALLOWED_PEERS', ['rpc', 'allowedPeers'], 'list'],
  ['PF_XDM_URL', ['xdm', 'url'], 'string'],
  ['PF_XDM_TOKEN', ['xdm', 'token'], 'string'],
  ['PF_XDM_TRUSTED_PROXIES', ['xdm', 'trustedProxies'], 'list'],
  ['PF_XDM_TRUSTED_PROXY_CERTS', ['xdm', 'trustedProxyCertificates'], 'list'],
  ['PF_OPERATOR_TOKEN', ['http', 'operatorToken'], 'string'],
  ['PF_METRICS', ['http', 'metrics'], 'string'],
  ['PF_HTTP_TLS_CERT', ['http', 'tls', 'cert'], 'string'],
  ['PF_HTTP_TLS_KEY', ['http', 'tls', 'key'], 'string'],
  ['PF_POLICY_MODE', ['policy', 'mode'], 'string'],
  ['PF_POLICY_DIAGNOSTIC_WARNING', ['policy', 'diagnosticWarning'], 'bool'],
  ['PF_POLICY_DEFERRED_DELIVERY', ['policy', 'deferredDelivery'], 'bool'],
  ['PF_POLICY_RECORD_HISTORY', ['policy', 'recordHistory'], 'bool'],
  ['PF_B2BUA_SIP_PORT', ['b2bua', 'sipPort'], 'int'],
  ['PF_B2BUA_PROXY_PORT', ['b2bua', 'proxyPort'], 'int'],
  ['PF_B2BUA_RELAY_PORT', ['b2bua', 'relayPort'], 'int'],
  ['PF_B2BUA_TOKEN', ['b2bua', 'legToken'], 'string'],
  ['PF_B2BUA_MULTI_DEVICE', ['b2bua', 'multiDevice'], 'string'],
  ['PF_LIVE', ['live', 'enabled'], 'bool'],
  ['PF_LIVE_HEP_PORT', ['live', 'hepPort'], 'int'],
  ['PF_SHARED_STATE', ['sharedState', 'engine'], 'string'],
  ['PF_REDIS_URLS', ['sharedState', 'redis', 'urls'], 'list'],
  ['PF_REDIS_CLUSTER', ['sharedState', 'redis', 'cluster'], 'bool'],
  ['PF_REDIS_PREFIX', ['sharedState', 'redis', 'prefix'], 'string'],
  ['PF_NODE_ID', ['sharedState', 'nodeId'], 'string'],
];

/** Some served user's mode is b2bua (then b2bua.legToken is required). */
function b2buaMode(policy: Policy): boolean {
  return policy.mode === 'b2bua' || Object.values(policy.modeByUser).includes('b2bua');
}

/**
 * Whether the B2BUA runs: the global mode or some served user's is b2bua, or deferred
 * delivery is on for someone and `legToken` is set (deferral needs the media path; without
 * the B2BUA a deferred session gets 480: docs/policy.md "Deferred delivery").
 */
export function b2buaWanted(policy: Policy, legToken = ''): boolean {
  const deferral = policy.deferredDelivery || Object.values(policy.deferredDeliveryByUser).includes(true);
  return b2buaMode(policy) || (deferral && legToken.length >= 16);
}

/** Validate a raw object (after env overrides), applying defaults. */
export function parseConfig(raw: unknown): Config {
  return finish(checkConfig(ConfigSchema, raw));
}

/** What the schema cannot say, on a config the schema has checked. */
function finish(cfg: Static<typeof ConfigSchema>): Config {
  // Cross-field rules the schema cannot say.
  if (cfg.registrar.minExpires > cfg.registrar.defaultExpires) {
    throw new ConfigError('config: /registrar/minExpires must not exceed /registrar/defaultExpires');
  }
  if (cfg.registrar.defaultExpires > cfg.registrar.maxExpires) {
    throw new ConfigError('config: /registrar/defaultExpires must not exceed /registrar/maxExpires');
  }
  for (const [path, list] of [['/rpc/allowedPeers', cfg.rpc.allowedPeers], ['/xdm/trustedProxies', cfg.xdm.trustedProxies]] as const) {
    try {
      peerList(list);
    } catch (err) {
      throw new ConfigError(`config: ${path}: ${(err as Error).message}`);
    }
  }
  const policy = resolvePolicy(cfg.policy);
  // CR 8.3.2.1 step 8: B2BUA mode needs the secret that pf.cfg checks on its legs
  if (b2buaMode(policy) && cfg.b2bua.legToken.length < 16) {
    throw new ConfigError('config: /b2bua/legToken must have at least 16 characters when some mode is b2bua (PF_B2BUA_TOKEN in pf.cfg)');
  }
  return { ...cfg, policy };
}

export interface LoadOptions {
  /** Config file; default `env.PF_CONFIG`; none means defaults + env only. */
  readonly file?: string | undefined;
  readonly env?: NodeJS.ProcessEnv;
}

export function loadConfig(opts: LoadOptions = {}): Config {
  const env = opts.env ?? process.env;
  // loadLayers has checked the schema already: only the cross-field rules remain.
  return finish(loadLayers(ConfigSchema, { file: opts.file ?? env.PF_CONFIG, env, envTable: ENV }));
}
