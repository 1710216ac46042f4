// Host names and origins: which `Host` headers the server answers (against DNS rebinding),
// which addresses count as loopback (no token needed there), and the parsing of the
// ALLOWED_HOSTS / ALLOWED_ORIGINS lists.
import { isIP } from 'node:net';

/** The host name of a Host header (`name:port`, `[::1]:port`), lower case, no brackets; undefined when unparsable. */
export function hostnameOf(hostHeader: string | undefined): string | undefined {
  if (!hostHeader) return undefined;
  try {
    const { hostname, username, password, pathname, search } = new URL(`http://${hostHeader}`);
    if (username || password || pathname !== '/' || search) return undefined; // not a bare host[:port]
    return hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  } catch {
    return undefined;
  }
}

/** `localhost`, 127.0.0.0/8, ::1 (also IPv4-mapped): only this machine can reach them. */
export function isLoopbackHost(host: string): boolean {
  const name = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (name === 'localhost' || name === '::1') return true;
  const v4 = name.replace(/^::ffff:/, '');
  return isIP(v4) === 4 && v4.startsWith('127.');
}

/**
 * Whether a request's host name is one this server answers to. An IP address cannot be
 * rebound (DNS rebinding needs a name the attacker controls), so every address is fine;
 * names must be `localhost`, the configured HOST, or listed (`.example.com` = it and its
 * subdomains, `*` = any).
 */
export function hostAllowed(hostname: string, configuredHost: string, allowed: readonly string[]): boolean {
  if (isIP(hostname) !== 0 || hostname === 'localhost' || hostname === configuredHost.toLowerCase()) return true;
  return allowed.some((entry) => entry === '*' || entry === hostname || (entry.startsWith('.') && (hostname === entry.slice(1) || hostname.endsWith(entry))));
}

/** One ALLOWED_HOSTS entry → its normal form, or an explanation of what is wrong with it. */
export function parseAllowedHost(entry: string): { ok: true; value: string } | { ok: false; error: string } {
  const value = entry.toLowerCase();
  if (value === '*' || isIP(value) !== 0 || /^\.?[a-z0-9-]+(\.[a-z0-9-]+)*$/.test(value)) return { ok: true, value };
  return { ok: false, error: `"${entry}" is not a host name (a name such as chat.example.com, without scheme or port; ".example.com" for it and its subdomains; "*" for any)` };
}

/** One ALLOWED_ORIGINS entry → its normal form (`URL.origin`), or an explanation. */
export function parseAllowedOrigin(entry: string): { ok: true; value: string } | { ok: false; error: string } {
  const invalid = { ok: false as const, error: `"${entry}" is not an origin (scheme://host[:port], e.g. https://chat.example.com)` };
  try {
    const url = new URL(entry);
    const bare = !url.username && !url.password && url.pathname === '/' && !url.search && !url.hash;
    if (!['http:', 'https:'].includes(url.protocol) || !bare) return invalid;
    return { ok: true, value: url.origin };
  } catch {
    return invalid;
  }
}

/** The normal form of a request's Origin header (as browsers send it), for comparison. */
export function normalOrigin(origin: string): string | undefined {
  try {
    const url = new URL(origin);
    return url.origin === 'null' ? undefined : url.origin;
  } catch {
    return undefined;
  }
}
