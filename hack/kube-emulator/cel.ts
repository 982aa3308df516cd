// A small evaluator for the subset of CEL that CRD `x-kubernetes-validations` rules use:
// literals, field selection, indexing, arithmetic, comparisons, `in`, `&&` `||` `!` `?:`, `has()`,
// `size()`, string functions (matches, startsWith, endsWith, contains, lowerAscii, upperAscii, trim),
// int()/uint()/double()/string(), and the list/map macros all, exists, exists_one, map, filter.

type Node =
  | { k: 'lit'; v: unknown }
  | { k: 'id'; name: string }
  | { k: 'sel'; obj: Node; field: string }
  | { k: 'idx'; obj: Node; index: Node }
  | { k: 'call'; fn: string; target?: Node; args: Node[] }
  | { k: 'un'; op: string; x: Node }
  | { k: 'bin'; op: string; l: Node; r: Node }
  | { k: 'cond'; c: Node; t: Node; f: Node }
  | { k: 'list'; items: Node[] }
  | { k: 'map'; entries: [Node, Node][] };

export class CelError extends Error {}

interface Tok {
  t: 'num' | 'str' | 'id' | 'op' | 'eof';
  v: string;
  n?: number;
}

function tokenize(src: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  const ops = ['&&', '||', '==', '!=', '<=', '>=', '<', '>', '+', '-', '*', '/', '%', '!', '?', ':', '.', ',', '(', ')', '[', ']', '{', '}'];
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) { i++; continue; }
    if (/[0-9]/.test(c)) {
      const m = src.slice(i).match(/^(0x[0-9a-fA-F]+|\d+\.\d+(?:[eE][+-]?\d+)?|\d+(?:[eE][+-]?\d+)?)([uU])?/)!;
      out.push({ t: 'num', v: m[0], n: Number(m[1]) });
      i += m[0].length;
      continue;
    }
    if (/[A-Za-z_]/.test(c)) {
      const m = src.slice(i).match(/^[A-Za-z_][A-Za-z0-9_]*/)!;
      // raw strings r'..' / r".."
      if ((m[0] === 'r' || m[0] === 'R') && (src[i + 1] === '"' || src[i + 1] === "'")) {
        const q = src[i + 1]!;
        const end = src.indexOf(q, i + 2);
        if (end < 0) throw new CelError('unterminated string');
        out.push({ t: 'str', v: src.slice(i + 2, end) });
        i = end + 1;
        continue;
      }
      out.push({ t: 'id', v: m[0] });
      i += m[0].length;
      continue;
    }
    if (c === '"' || c === "'") {
      const triple = src.startsWith(c.repeat(3), i);
      const q = triple ? c.repeat(3) : c;
      let j = i + q.length;
      let s = '';
      while (j < src.length && !src.startsWith(q, j)) {
        if (src[j] === '\\') {
          const e = src[j + 1]!;
          const map: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', '"': '"', "'": "'", '`': '`', '?': '?', a: '\x07', b: '\b', f: '\f', v: '\v' };
          if (e in map) { s += map[e]; j += 2; continue; }
          if (e === 'u') { s += String.fromCharCode(parseInt(src.slice(j + 2, j + 6), 16)); j += 6; continue; }
          if (e === 'x') { s += String.fromCharCode(parseInt(src.slice(j + 2, j + 4), 16)); j += 4; continue; }
          throw new CelError(`invalid escape \\${e}`);
        }
        s += src[j];
        j++;
      }
      if (j >= src.length) throw new CelError('unterminated string');
      out.push({ t: 'str', v: s });
      i = j + q.length;
      continue;
    }
    const op = ops.find((o) => src.startsWith(o, i));
    if (!op) throw new CelError(`Syntax error: token recognition error at: '${c}'`);
    out.push({ t: 'op', v: op });
    i += op.length;
  }
  out.push({ t: 'eof', v: '' });
  return out;
}

class Parser {
  private p = 0;
  constructor(private toks: Tok[]) {}
  private peek(): Tok { return this.toks[this.p]!; }
  private next(): Tok { return this.toks[this.p++]!; }
  private isOp(v: string): boolean { const t = this.peek(); return t.t === 'op' && t.v === v; }
  private expect(v: string): void {
    const t = this.next();
    if (t.t !== 'op' || t.v !== v) throw new CelError(`Syntax error: expected '${v}' but found '${t.v || 'EOF'}'`);
  }
  parseAll(): Node {
    const n = this.expr();
    if (this.peek().t !== 'eof') throw new CelError(`Syntax error: unexpected '${this.peek().v}'`);
    return n;
  }
  expr(): Node {
    const c = this.or();
    if (this.isOp('?')) {
      this.next();
      const t = this.or();
      this.expect(':');
      const f = this.expr();
      return { k: 'cond', c, t, f };
    }
    return c;
  }
  private or(): Node {
    let l = this.and();
    while (this.isOp('||')) { this.next(); l = { k: 'bin', op: '||', l, r: this.and() }; }
    return l;
  }
  private and(): Node {
    let l = this.rel();
    while (this.isOp('&&')) { this.next(); l = { k: 'bin', op: '&&', l, r: this.rel() }; }
    return l;
  }
  private rel(): Node {
    let l = this.add();
    for (;;) {
      const t = this.peek();
      if (t.t === 'op' && ['==', '!=', '<', '<=', '>', '>='].includes(t.v)) { this.next(); l = { k: 'bin', op: t.v, l, r: this.add() }; }
      else if (t.t === 'id' && t.v === 'in') { this.next(); l = { k: 'bin', op: 'in', l, r: this.add() }; }
      else return l;
    }
  }
  private add(): Node {
    let l = this.mul();
    while (this.isOp('+') || this.isOp('-')) { const op = this.next().v; l = { k: 'bin', op, l, r: this.mul() }; }
    return l;
  }
  private mul(): Node {
    let l = this.unary();
    while (this.isOp('*') || this.isOp('/') || this.isOp('%')) { const op = this.next().v; l = { k: 'bin', op, l, r: this.unary() }; }
    return l;
  }
  private unary(): Node {
    if (this.isOp('!')) { this.next(); return { k: 'un', op: '!', x: this.unary() }; }
    if (this.isOp('-')) { this.next(); return { k: 'un', op: '-', x: this.unary() }; }
    return this.member();
  }
  private args(): Node[] {
    const a: Node[] = [];
    if (this.isOp(')')) { this.next(); return a; }
    for (;;) {
      a.push(this.expr());
      if (this.isOp(',')) { this.next(); continue; }
      this.expect(')');
      return a;
    }
  }
  private member(): Node {
    let n = this.primary();
    for (;;) {
      if (this.isOp('.')) {
        this.next();
        const id = this.next();
        if (id.t !== 'id') throw new CelError('Syntax error: expected identifier after .');
        if (this.isOp('(')) { this.next(); n = { k: 'call', fn: id.v, target: n, args: this.args() }; }
        else n = { k: 'sel', obj: n, field: id.v };
      } else if (this.isOp('[')) {
        this.next();
        const index = this.expr();
        this.expect(']');
        n = { k: 'idx', obj: n, index };
      } else return n;
    }
  }
  private primary(): Node {
    const t = this.next();
    if (t.t === 'num') return { k: 'lit', v: t.n };
    if (t.t === 'str') return { k: 'lit', v: t.v };
    if (t.t === 'id') {
      if (t.v === 'true') return { k: 'lit', v: true };
      if (t.v === 'false') return { k: 'lit', v: false };
      if (t.v === 'null') return { k: 'lit', v: null };
      if (this.isOp('(')) { this.next(); return { k: 'call', fn: t.v, args: this.args() }; }
      return { k: 'id', name: t.v };
    }
    if (t.t === 'op' && t.v === '(') { const e = this.expr(); this.expect(')'); return e; }
    if (t.t === 'op' && t.v === '[') {
      const items: Node[] = [];
      while (!this.isOp(']')) { items.push(this.expr()); if (this.isOp(',')) this.next(); else break; }
      this.expect(']');
      return { k: 'list', items };
    }
    if (t.t === 'op' && t.v === '{') {
      const entries: [Node, Node][] = [];
      while (!this.isOp('}')) {
        const key = this.expr();
        this.expect(':');
        entries.push([key, this.expr()]);
        if (this.isOp(',')) this.next(); else break;
      }
      this.expect('}');
      return { k: 'map', entries };
    }
    throw new CelError(`Syntax error: mismatched input '${t.v || '<EOF>'}'`);
  }
}

const cache = new Map<string, Node>();

/** Parses (and caches) a CEL expression; throws CelError on syntax errors. */
export function compile(src: string): Node {
  let n = cache.get(src);
  if (!n) {
    n = new Parser(tokenize(src)).parseAll();
    cache.set(src, n);
  }
  return n;
}

/** True when the expression mentions `oldSelf` (a transition rule). */
export function usesOldSelf(src: string): boolean {
  return /\boldSelf\b/.test(src);
}

type Env = Record<string, unknown>;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (isObj(a) && isObj(b)) {
    const ka = Object.keys(a);
    if (ka.length !== Object.keys(b).length) return false;
    return ka.every((k) => k in b && deepEqual(a[k], b[k]));
  }
  return false;
}

function truthy(v: unknown): boolean {
  if (typeof v !== 'boolean') throw new CelError(`no such overload: expected bool, got ${typeName(v)}`);
  return v;
}

function typeName(v: unknown): string {
  if (v === null) return 'null_type';
  if (Array.isArray(v)) return 'list';
  if (typeof v === 'object') return 'map';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'double';
  if (typeof v === 'string') return 'string';
  if (typeof v === 'boolean') return 'bool';
  return typeof v;
}

function select(obj: unknown, field: string): unknown {
  if (!isObj(obj)) throw new CelError(`no such key: ${field}`);
  if (!Object.prototype.hasOwnProperty.call(obj, field)) throw new CelError(`no such key: ${field}`);
  return obj[field];
}

function evalNode(n: Node, env: Env): unknown {
  switch (n.k) {
    case 'lit': return n.v;
    case 'id':
      if (!(n.name in env)) throw new CelError(`undeclared reference to '${n.name}'`);
      return env[n.name];
    case 'sel': return select(evalNode(n.obj, env), n.field);
    case 'idx': {
      const o = evalNode(n.obj, env);
      const i = evalNode(n.index, env);
      if (Array.isArray(o)) {
        if (typeof i !== 'number' || i < 0 || i >= o.length) throw new CelError(`index out of bounds: ${String(i)}`);
        return o[i];
      }
      return select(o, String(i));
    }
    case 'list': return n.items.map((x) => evalNode(x, env));
    case 'map': return Object.fromEntries(n.entries.map(([k, v]) => [String(evalNode(k, env)), evalNode(v, env)]));
    case 'cond': return truthy(evalNode(n.c, env)) ? evalNode(n.t, env) : evalNode(n.f, env);
    case 'un': {
      const x = evalNode(n.x, env);
      if (n.op === '!') return !truthy(x);
      if (typeof x !== 'number') throw new CelError(`no such overload: -${typeName(x)}`);
      return -x;
    }
    case 'bin': return evalBin(n.op, n.l, n.r, env);
    case 'call': return evalCall(n, env);
  }
}

function evalBin(op: string, ln: Node, rn: Node, env: Env): unknown {
  if (op === '&&' || op === '||') {
    // CEL's commutative logic: an error on one side is absorbed if the other side decides.
    let le: unknown = null;
    let lv: boolean | undefined;
    try { lv = truthy(evalNode(ln, env)); } catch (e) { le = e; }
    if (lv !== undefined && (op === '&&' ? !lv : lv)) return lv;
    const rv = truthy(evalNode(rn, env));
    if (op === '&&' ? !rv : rv) return rv;
    if (le) throw le;
    return rv;
  }
  const l = evalNode(ln, env);
  const r = evalNode(rn, env);
  switch (op) {
    case '==': return deepEqual(l, r);
    case '!=': return !deepEqual(l, r);
    case 'in':
      if (Array.isArray(r)) return r.some((x) => deepEqual(x, l));
      if (isObj(r)) return Object.prototype.hasOwnProperty.call(r, String(l));
      throw new CelError(`no such overload: ${typeName(l)} in ${typeName(r)}`);
  }
  if (op === '+' && typeof l === 'string' && typeof r === 'string') return l + r;
  if (op === '+' && Array.isArray(l) && Array.isArray(r)) return [...l, ...r];
  if (['<', '<=', '>', '>='].includes(op)) {
    if (!((typeof l === 'number' && typeof r === 'number') || (typeof l === 'string' && typeof r === 'string'))) {
      throw new CelError(`no such overload: ${typeName(l)} ${op} ${typeName(r)}`);
    }
    switch (op) {
      case '<': return l < r;
      case '<=': return l <= r;
      case '>': return l > r;
      default: return l >= r;
    }
  }
  if (typeof l !== 'number' || typeof r !== 'number') throw new CelError(`no such overload: ${typeName(l)} ${op} ${typeName(r)}`);
  const ints = Number.isInteger(l) && Number.isInteger(r);
  switch (op) {
    case '+': return l + r;
    case '-': return l - r;
    case '*': return l * r;
    case '/':
      if (ints && r === 0) throw new CelError('division by zero');
      return ints ? Math.trunc(l / r) : l / r;
    case '%':
      if (r === 0) throw new CelError('modulus by zero');
      return l % r;
  }
  throw new CelError(`unknown operator ${op}`);
}

const MACROS = new Set(['all', 'exists', 'exists_one', 'map', 'filter']);

function evalCall(n: Extract<Node, { k: 'call' }>, env: Env): unknown {
  if (n.fn === 'has' && !n.target) {
    const a = n.args[0];
    if (!a || a.k !== 'sel') throw new CelError('invalid argument to has() macro');
    const o = evalNode(a.obj, env);
    return isObj(o) && Object.prototype.hasOwnProperty.call(o, a.field);
  }
  if (n.target && MACROS.has(n.fn)) {
    const coll = evalNode(n.target, env);
    const v = n.args[0];
    if (!v || v.k !== 'id') throw new CelError(`${n.fn}() requires a variable name`);
    const items = Array.isArray(coll) ? coll : isObj(coll) ? Object.keys(coll) : null;
    if (!items) throw new CelError(`no such overload: ${typeName(coll)}.${n.fn}`);
    const body = n.args[n.args.length - 1]!;
    const run = (x: unknown): unknown => evalNode(body, { ...env, [v.name]: x });
    switch (n.fn) {
      case 'all': return items.every((x) => truthy(run(x)));
      case 'exists': return items.some((x) => truthy(run(x)));
      case 'exists_one': return items.filter((x) => truthy(run(x))).length === 1;
      case 'filter': return items.filter((x) => truthy(run(x)));
      case 'map':
        if (n.args.length === 3) return items.filter((x) => truthy(evalNode(n.args[1]!, { ...env, [v.name]: x }))).map(run);
        return items.map(run);
    }
  }
  const args = n.args.map((a) => evalNode(a, env));
  const target = n.target ? evalNode(n.target, env) : undefined;
  const recv = n.target ? target : args.shift();
  const str = (x: unknown): string => {
    if (typeof x !== 'string') throw new CelError(`no such overload: ${typeName(x)}.${n.fn}`);
    return x;
  };
  switch (n.fn) {
    case 'size':
      if (typeof recv === 'string') return [...recv].length;
      if (Array.isArray(recv)) return recv.length;
      if (isObj(recv)) return Object.keys(recv).length;
      throw new CelError(`no such overload: size(${typeName(recv)})`);
    case 'matches': return new RegExp(String(args[0])).test(str(recv));
    case 'startsWith': return str(recv).startsWith(String(args[0]));
    case 'endsWith': return str(recv).endsWith(String(args[0]));
    case 'contains': return str(recv).includes(String(args[0]));
    case 'lowerAscii': return str(recv).toLowerCase();
    case 'upperAscii': return str(recv).toUpperCase();
    case 'trim': return str(recv).trim();
    case 'split': return str(recv).split(String(args[0]));
    case 'indexOf': return str(recv).indexOf(String(args[0]));
    case 'int': case 'uint': {
      if (typeof recv === 'number') return Math.trunc(recv);
      if (typeof recv === 'string' && /^-?\d+$/.test(recv)) return Number(recv);
      throw new CelError(`cannot convert ${typeName(recv)} to int`);
    }
    case 'double': {
      const d = Number(recv);
      if (Number.isNaN(d)) throw new CelError(`cannot convert ${typeName(recv)} to double`);
      return d;
    }
    case 'string': return typeof recv === 'string' ? recv : JSON.stringify(recv);
    case 'bool': return recv === true || recv === 'true';
    case 'type': return typeName(recv);
  }
  throw new CelError(`undeclared reference to '${n.fn}'`);
}

/** Evaluates a compiled expression with the given variables (`self`, `oldSelf`). */
export function evaluate(src: string, env: Env): unknown {
  return evalNode(compile(src), env);
}
