/** IPv4 address arithmetic on unsigned 32-bit integers, shared by the controller, agent and emulators. */

export function ipToInt(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4) throw new Error(`not an IPv4 address: ${JSON.stringify(ip)}`);
  let n = 0;
  for (const part of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part) || Number(part) > 255) throw new Error(`not an IPv4 address: ${JSON.stringify(ip)}`);
    n = n * 256 + Number(part);
  }
  return n;
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export interface CIDR {
  /** First address of the block, as an integer. */
  network: number;
  prefixLength: number;
  /** Number of addresses in the block. */
  size: number;
}

export function parseCIDR(cidr: string): CIDR {
  const [ip, len, ...rest] = cidr.split('/');
  const prefixLength = Number(len);
  if (rest.length || ip === undefined || !/^([0-9]|[12][0-9]|3[0-2])$/.test(len ?? '')) {
    throw new Error(`not an IPv4 CIDR: ${JSON.stringify(cidr)}`);
  }
  const size = 2 ** (32 - prefixLength);
  const network = ipToInt(ip) - (ipToInt(ip) % size);
  return { network, prefixLength, size };
}

export function formatCIDR(c: CIDR): string {
  return `${intToIp(c.network)}/${c.prefixLength}`;
}

export function cidrContains(c: CIDR, ip: string | number): boolean {
  const n = typeof ip === 'number' ? ip : ipToInt(ip);
  return n >= c.network && n < c.network + c.size;
}

/** Azure's gateway for a subnet is its first usable address (network + 1). */
export function azureGateway(c: CIDR): string {
  return intToIp(c.network + 1);
}

/** Azure reserves the network address, the next three (gateway and DNS) and the broadcast address. */
export function isAzureReserved(c: CIDR, ip: string | number): boolean {
  const n = typeof ip === 'number' ? ip : ipToInt(ip);
  return n - c.network < 4 || n === c.network + c.size - 1;
}
