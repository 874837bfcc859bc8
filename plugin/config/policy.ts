/**
 * The `policy` section of the config. The schema belongs to the rules
 * (plugin/rules/policy.ts); this module is the one place the config imports it from.
 */
import { Type } from '@sinclair/typebox';

// Placeholder until plugin/rules/policy.ts lands: accept an object, validated there.
export const PolicyConfigSchema = Type.Object({}, { additionalProperties: true, default: {} });
