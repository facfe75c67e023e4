import { readFileSync } from 'node:fs';

/**
 * Whether a running machine's interfaces are configured, read from the host in its network
 * namespace's routing table (/proc/<pid>/net/route): no command in the machine, which a booting
 * machine pays for in CPU. An interface counts once it has a route (the kernel adds one for the
 * prefix of each address it is given, static or leased) and, when the machine's default route goes
 * out of it, that route too.
 */

export interface ExpectedInterface {
  name: string;
  /** A default route out of it is expected (a gateway on its network). */
  defaultRoute: boolean;
}

export interface Route {
  iface: string;
  /** The destination as the kernel prints it: hex, network byte order; 00000000 is the default route. */
  destination: string;
}

export function parseRoutes(table: string): Route[] {
  return table
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields.length >= 2 && fields[0] !== '')
    .map(([iface, destination]) => ({ iface: iface!, destination: destination! }));
}

/** The interfaces not configured yet, by name. */
export function unconfiguredInterfaces(expected: readonly ExpectedInterface[], routes: readonly Route[]): string[] {
  return expected
    .filter((iface) => {
      const own = routes.filter((r) => r.iface === iface.name);
      return own.length === 0 || (iface.defaultRoute && !own.some((r) => r.destination === '00000000'));
    })
    .map((iface) => iface.name);
}

/** The interfaces not configured yet of the machine whose init is `leader` (undefined: it does not run). */
export function unconfiguredOf(leader: number | undefined, expected: readonly ExpectedInterface[]): string[] | undefined {
  if (leader === undefined) return undefined;
  let table: string;
  try {
    table = readFileSync(`/proc/${leader}/net/route`, 'utf8');
  } catch {
    return undefined; // gone meanwhile
  }
  return unconfiguredInterfaces(expected, parseRoutes(table));
}
