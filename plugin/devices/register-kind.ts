/**
 * What a REGISTER did to the user's bindings, for `pf_register_total{kind}`
 * (docs/service.md, metrics): a query (RFC 3261 §10.2.3), a de-registration
 * (`Contact: *` with `Expires: 0`, §10.2.2, or only removals, §10.2.2 per-contact
 * `expires=0`), a new binding (§10.2.1), else a refresh of existing ones (§10.2.4).
 */

export type RegisterKind = 'register' | 'refresh' | 'deregister' | 'fetch';

/** The change's kind (plugin/devices/store.ts DeviceChange) and its counts (ApplyResult). */
export function registerKind(
  change: { readonly kind: 'fetch' | 'remove-all' | 'update' },
  result: { readonly added: number; readonly refreshed: number; readonly removed: number },
): RegisterKind {
  if (change.kind === 'fetch') return 'fetch';
  if (change.kind === 'remove-all') return 'deregister';
  if (result.removed > 0 && result.added + result.refreshed === 0) return 'deregister';
  return result.added > 0 ? 'register' : 'refresh';
}
