// IPv4 address space of one subnet: which addresses are taken, lowest free first.
// Two-level bitmap: one bit per address, one summary bit per 32-address word that is full,
// so finding the lowest free address scans size/1024 summary words at worst.

import { intToIp, ipToInt, parseCIDR } from '../../crds/ipv4.js';

/** The address as an integer, or undefined when it is not a dotted-quad IPv4 address (no throw: request input). */
export function parseIPv4(text: string): number | undefined {
  try { return ipToInt(text); } catch { return undefined; }
}

export const formatIPv4 = intToIp;

export interface Cidr { base: number; prefixLength: number; size: number }

/**
 * A prefix as Azure accepts it: unlike crds/ipv4.ts's parseCIDR, which masks host bits away, Azure refuses
 * a prefix with host bits set (10.0.0.1/24), so that is undefined here too.
 */
export function parseCidr(text: string): Cidr | undefined {
  let c;
  try { c = parseCIDR(text); } catch { return undefined; }
  if (parseIPv4(text.split('/')[0]!) !== c.network) return undefined;
  return { base: c.network, prefixLength: c.prefixLength, size: c.size };
}

export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  return inner.base >= outer.base && inner.base + inner.size <= outer.base + outer.size;
}

/** Azure reserves the network address, .1 (gateway), .2 and .3 (DNS), and the broadcast address. */
export const RESERVED_PER_SUBNET = 5;

export class AddressPool {
  readonly cidr: Cidr;
  private readonly words: Uint32Array;
  private readonly fullWords: Uint32Array;
  private summaryHint = 0;
  /** No aligned 16-address block starts below this word's first half (a hint, lowered on release). */
  private blockHint = 0;
  private taken = 0;

  constructor(cidrText: string) {
    const cidr = parseCidr(cidrText);
    if (!cidr) throw new Error(`invalid IPv4 CIDR ${JSON.stringify(cidrText)}`);
    if (cidr.prefixLength > 29) throw new Error(`subnet ${cidrText} is smaller than /29, the smallest Azure allows`);
    this.cidr = cidr;
    this.words = new Uint32Array(Math.ceil(cidr.size / 32));
    this.fullWords = new Uint32Array(Math.ceil(this.words.length / 32));
    // Bits past the end of a small subnet, and summary bits past the last word, read as taken.
    if (cidr.size < 32) this.words[0] = ~((2 ** cidr.size) - 1) >>> 0;
    if (this.words.length < 32) this.fullWords[0] = ~((2 ** this.words.length) - 1) >>> 0;
    for (const offset of [0, 1, 2, 3, cidr.size - 1]) this.setBit(offset);
  }

  get capacity(): number { return this.cidr.size - RESERVED_PER_SUBNET; }
  get used(): number { return this.taken - RESERVED_PER_SUBNET; }
  get free(): number { return this.cidr.size - this.taken; }

  contains(ip: number): boolean { return ip >= this.cidr.base && ip < this.cidr.base + this.cidr.size; }

  isReserved(ip: number): boolean {
    const offset = ip - this.cidr.base;
    return offset <= 3 || offset === this.cidr.size - 1;
  }

  isTaken(ip: number): boolean {
    const offset = ip - this.cidr.base;
    return ((this.words[offset >>> 5]! >>> (offset & 31)) & 1) === 1;
  }

  /** Takes a specific address; false if it is outside, reserved or already taken. */
  take(ip: number): boolean {
    if (!this.contains(ip) || this.isTaken(ip)) return false;
    this.setBit(ip - this.cidr.base);
    return true;
  }

  /** Takes the lowest free address, or undefined when the subnet is full. */
  takeLowest(): number | undefined {
    const summaries = this.fullWords.length;
    for (let s = this.summaryHint; s < summaries; s++) {
      const summary = this.fullWords[s]!;
      if (summary === 0xffffffff) continue;
      this.summaryHint = s;
      const bit = lowestZeroBit(summary);
      const w = s * 32 + bit;
      const word = this.words[w]!;
      const offset = w * 32 + lowestZeroBit(word);
      this.setBit(offset);
      return this.cidr.base + offset;
    }
    this.summaryHint = summaries;
    return undefined;
  }

  /**
   * Takes the lowest free aligned block of `size` addresses (a power of two, 16 for a /28, at most 32),
   * or undefined when none is free: a subnet can have free addresses and still no free aligned block.
   * The first block holds the reserved .0-.3 and the last the broadcast address, so neither is ever free.
   */
  takeLowestBlock(size: number): number | undefined {
    if (size < 1 || size > 32 || (size & (size - 1)) !== 0) throw new Error(`block size ${size} is not a power of two up to 32`);
    const mask = size === 32 ? 0xffffffff : ((2 ** size) - 1);
    const perWord = 32 / size;
    for (let w = this.blockHint; w < this.words.length; w++) {
      const word = this.words[w]!;
      if (word === 0xffffffff) continue;
      for (let k = 0; k < perWord; k++) {
        if (((word >>> (k * size)) & mask) !== 0) continue;
        const offset = w * 32 + k * size;
        if (offset + size > this.cidr.size) return undefined;
        this.blockHint = w;
        for (let i = 0; i < size; i++) this.setBit(offset + i);
        return this.cidr.base + offset;
      }
    }
    this.blockHint = this.words.length;
    return undefined;
  }

  /** Takes every address of [first, first+size); false (taking none) if any is outside or taken. */
  takeRange(first: number, size: number): boolean {
    for (let i = 0; i < size; i++) if (!this.contains(first + i) || this.isTaken(first + i)) return false;
    for (let i = 0; i < size; i++) this.setBit(first + i - this.cidr.base);
    return true;
  }

  releaseRange(first: number, size: number): void {
    for (let i = 0; i < size; i++) this.release(first + i);
  }

  /** Free aligned blocks of `size` addresses (a full scan: for conditions and tests, not the hot path). */
  freeBlocks(size: number): number {
    let n = 0;
    for (let offset = 0; offset + size <= this.cidr.size; offset += size) {
      let free = true;
      for (let i = 0; i < size && free; i++) if (this.isTaken(this.cidr.base + offset + i)) free = false;
      if (free) n++;
    }
    return n;
  }

  release(ip: number): void {
    if (!this.contains(ip) || this.isReserved(ip) || !this.isTaken(ip)) return;
    const offset = ip - this.cidr.base;
    const w = offset >>> 5;
    this.words[w] = this.words[w]! & ~(1 << (offset & 31));
    const s = w >>> 5;
    this.fullWords[s] = this.fullWords[s]! & ~(1 << (w & 31));
    if (s < this.summaryHint) this.summaryHint = s;
    if (w < this.blockHint) this.blockHint = w;
    this.taken--;
  }

  /** Every taken address that is not one of the five reserved, lowest first; skips empty words. */
  forEachAllocated(visit: (ip: number) => void): void {
    const last = this.cidr.size - 1;
    for (let w = 0; w < this.words.length; w++) {
      let word = this.words[w]!;
      while (word !== 0) {
        const bit = 31 - Math.clz32(word & -word);
        word = (word & ~(1 << bit)) >>> 0;
        const offset = w * 32 + bit;
        if (offset > 3 && offset < last) visit(this.cidr.base + offset);
      }
    }
  }

  private setBit(offset: number): void {
    const w = offset >>> 5;
    const word = (this.words[w]! | (1 << (offset & 31))) >>> 0;
    if (word === this.words[w]) return;
    this.words[w] = word;
    this.taken++;
    if (word === 0xffffffff) {
      const s = w >>> 5;
      this.fullWords[s] = (this.fullWords[s]! | (1 << (w & 31))) >>> 0;
    }
  }
}

function lowestZeroBit(word: number): number {
  const inverted = ~word >>> 0;
  // isolate lowest set bit of the inverted word
  return 31 - Math.clz32(inverted & -inverted);
}
