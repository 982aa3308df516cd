// Server-side printing: meta.k8s.io/v1 Table for `kubectl get`, from CRD additionalPrinterColumns
// (simple JSONPath) or the built-in column sets.
import type { PrinterColumn, ResourceType } from './registry.js';
import type { Obj } from './store.js';

/** Evaluates the JSONPath subset printer columns use: .a.b, [n], [*], [?(@.k=="v")]. */
export function jsonPath(obj: unknown, path: string): unknown[] {
  let cur: unknown[] = [obj];
  const re = /\.([A-Za-z0-9_-]+)|\[(\d+|\*)\]|\[\?\(@\.([A-Za-z0-9_.-]+)\s*==\s*["']([^"']*)["']\)\]|\['([^']+)'\]/g;
  const p = path.replace(/^\{|\}$/g, '').trim();
  let m: RegExpExecArray | null;
  let consumed = 0;
  while ((m = re.exec(p))) {
    if (m.index !== consumed) return [];
    consumed = m.index + m[0].length;
    const next: unknown[] = [];
    for (const v of cur) {
      if (v === null || v === undefined) continue;
      if (m[1] !== undefined || m[5] !== undefined) {
        const k = (m[1] ?? m[5])!;
        if (typeof v === 'object' && !Array.isArray(v) && k in (v as Obj)) next.push((v as Obj)[k]);
      } else if (m[2] !== undefined) {
        if (!Array.isArray(v)) continue;
        if (m[2] === '*') next.push(...v);
        else if (Number(m[2]) < v.length) next.push(v[Number(m[2])]);
      } else if (m[3] !== undefined) {
        if (!Array.isArray(v)) continue;
        for (const x of v) {
          let f: unknown = x;
          for (const part of m[3].split('.')) f = f && typeof f === 'object' ? (f as Obj)[part] : undefined;
          if (String(f) === m[4]) next.push(x);
        }
      }
    }
    cur = next;
  }
  return consumed === p.length ? cur : [];
}

/** Kubernetes' duration.HumanDuration. */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) { const s = seconds % 60; return s === 0 ? `${minutes}m` : `${minutes}m${s}s`; }
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(seconds / 3600);
  if (hours < 8) { const mm = minutes % 60; return mm === 0 ? `${hours}h` : `${hours}h${mm}m`; }
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) { const h = hours % 24; return h === 0 ? `${Math.floor(hours / 24)}d` : `${Math.floor(hours / 24)}d${h}h`; }
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24)}d`;
  if (hours < 24 * 365 * 8) { const dy = Math.floor(hours / 24) % 365; const y = Math.floor(hours / 24 / 365); return dy === 0 ? `${y}y` : `${y}y${dy}d`; }
  return `${Math.floor(hours / 24 / 365)}y`;
}

const age = (ts: unknown, nowMs: number): string | null => (typeof ts === 'string' ? humanDuration(nowMs - Date.parse(ts)) : null);

function cell(col: PrinterColumn, obj: Obj, nowMs: number): unknown {
  const vals = jsonPath(obj, col.jsonPath);
  if (!vals.length) return null;
  const v = vals.length === 1 ? vals[0] : vals;
  switch (col.type) {
    case 'date': return age(v, nowMs);
    case 'integer': return typeof v === 'number' ? Math.trunc(v) : v;
    case 'number': case 'boolean': return v;
    default: return typeof v === 'string' ? v : Array.isArray(v) ? v.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join(',') : JSON.stringify(v);
  }
}

/** Built-in kinds whose cells are computed rather than plain JSONPath values. */
function builtinCells(t: ResourceType, obj: Obj, nowMs: number): unknown[] | null {
  if (t.group === '' && t.kind === 'Node') {
    const ready = (obj.status?.conditions ?? []).find((c: Obj) => c.type === 'Ready');
    let status = ready ? (ready.status === 'True' ? 'Ready' : ready.status === 'False' ? 'NotReady' : 'Unknown') : 'Unknown';
    if (obj.spec?.unschedulable) status += ',SchedulingDisabled';
    const roles = Object.keys(obj.metadata.labels ?? {}).filter((k) => k.startsWith('node-role.kubernetes.io/')).map((k) => k.slice(24)).sort();
    const ip = (obj.status?.addresses ?? []).find((a: Obj) => a.type === 'InternalIP')?.address ?? '<none>';
    return [obj.metadata.name, status, roles.length ? roles.join(',') : '<none>', age(obj.metadata.creationTimestamp, nowMs), obj.status?.nodeInfo?.kubeletVersion ?? '', ip];
  }
  if (t.group === '' && (t.kind === 'ConfigMap' || t.kind === 'Secret')) {
    const n = Object.keys(obj.data ?? {}).length + Object.keys(obj.binaryData ?? {}).length;
    return t.kind === 'Secret' ? [obj.metadata.name, obj.type ?? 'Opaque', n, age(obj.metadata.creationTimestamp, nowMs)] : [obj.metadata.name, n, age(obj.metadata.creationTimestamp, nowMs)];
  }
  if (t.group === '' && t.kind === 'Event') {
    // as kubectl's printer: a series gives Last Seen and Count; an events.k8s.io singleton counts 1
    const first = obj.firstTimestamp ?? obj.eventTime ?? obj.metadata.creationTimestamp;
    const last = obj.series?.lastObservedTime ?? obj.lastTimestamp ?? first;
    const count = obj.series?.count ?? (obj.count || 1);
    const io = obj.involvedObject ?? {};
    return [age(last, nowMs), obj.type ?? '', obj.reason ?? '', `${String(io.kind ?? '').toLowerCase()}/${io.name ?? ''}`, obj.message ?? '', age(first, nowMs), count, obj.metadata.name];
  }
  if (t.group === 'apps' && t.kind === 'Deployment') {
    return [obj.metadata.name, `${obj.status?.readyReplicas ?? 0}/${obj.spec?.replicas ?? 1}`, obj.status?.availableReplicas ?? 0, age(obj.metadata.creationTimestamp, nowMs)];
  }
  if (t.kind === 'ValidatingAdmissionPolicy') {
    return [obj.metadata.name, (obj.spec?.validations ?? []).length, age(obj.metadata.creationTimestamp, nowMs)];
  }
  return null;
}

export function columnsFor(t: ResourceType): PrinterColumn[] {
  if (t.schema) {
    const cols = t.printerColumns?.length ? t.printerColumns : [{ name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }];
    return cols;
  }
  return t.table?.columns ?? [{ name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }];
}

export function toTable(t: ResourceType, objs: Obj[], listMeta: Obj, includeObject: string, nowMs = Date.now()): Obj {
  const cols = columnsFor(t);
  const nameFirst = !(t.group === '' && t.kind === 'Event');
  const nameCol = { name: 'Name', type: 'string', format: 'name', description: 'Name must be unique within a namespace.', priority: nameFirst ? 0 : 1 };
  const columnDefinitions = nameFirst ? [nameCol, ...cols.map((c) => ({ name: c.name, type: c.type, format: c.format ?? '', description: c.description ?? '', priority: c.priority ?? 0 }))]
    : [...cols.map((c) => ({ name: c.name, type: c.type, format: c.format ?? '', description: c.description ?? '', priority: c.priority ?? 0 })), nameCol];
  const rows = objs.map((o) => {
    const cells = (t.schema ? null : builtinCells(t, o, nowMs))
      ?? [o.metadata.name, ...cols.map((c) => (!t.schema && c.type === 'date' && c.format === 'date-time' ? (jsonPath(o, c.jsonPath)[0] ?? null) : cell(c, o, nowMs)))];
    const row: Obj = { cells };
    // the whole object, typed as the API server encodes it (kubectl --sort-by decodes these to sort)
    if (includeObject === 'Object') row.object = { apiVersion: t.group ? `${t.group}/${t.version}` : t.version, kind: t.kind, ...o };
    else if (includeObject !== 'None') row.object = { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata };
    return row;
  });
  return { kind: 'Table', apiVersion: 'meta.k8s.io/v1', metadata: listMeta, columnDefinitions, rows };
}
