/** A Kamailio evapi endpoint, `host:port` (IPv6 in brackets), as the config names it. */
export interface EvapiEndpoint {
  readonly host: string;
  readonly port: number;
}

/** `host:port` -> endpoint; null when it is not one. */
export function parseEndpoint(text: string): EvapiEndpoint | null {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):([0-9]{1,5})$/.exec(text);
  if (!m) return null;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return null;
  return { host: m[1] ?? m[2] ?? '', port };
}
