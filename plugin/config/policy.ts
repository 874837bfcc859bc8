/**
 * The `policy` section of the config. The schema and defaults belong to the rules
 * (plugin/rules/policy.ts); the config may give any subset of the top-level fields,
 * each replacing the default as a whole (so `media` is given complete or not at all).
 */
import { Type } from '@sinclair/typebox';
import { PolicySchema, defaultPolicy, type Policy } from '../rules/policy.js';

export const PolicyConfigSchema = Type.Partial(PolicySchema, { additionalProperties: false, default: {} });

export function resolvePolicy(partial: Partial<Policy>): Policy {
  return { ...defaultPolicy, ...partial };
}
