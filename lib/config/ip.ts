/** Small IPv4 arithmetic for validating and deriving zone addresses. */
export function ipToInt(ip: string): number {
  return ip.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export interface Subnet {
  network: number;
  prefix: number;
  size: number;
}

export function parseSubnet(cidr: string): Subnet {
  const [ip, prefixText] = cidr.split('/');
  const prefix = Number(prefixText);
  const size = 2 ** (32 - prefix);
  return { network: ipToInt(ip) - (ipToInt(ip) % size), prefix, size };
}

/** True when `ip` is a usable host address of the subnet (not its network or broadcast address). */
export function isHostIn(ip: string, subnet: Subnet): boolean {
  const n = ipToInt(ip);
  return n > subnet.network && n < subnet.network + subnet.size - 1;
}

export function overlaps(a: Subnet, b: Subnet): boolean {
  return a.network < b.network + b.size && b.network < a.network + a.size;
}

/** The n-th address of the subnet (1 = first host address). */
export function nthAddress(subnet: Subnet, n: number): string {
  return intToIp(subnet.network + n);
}
