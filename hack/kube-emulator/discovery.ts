// Discovery as the API server serves it: /version, /api, /apis, /apis/<group>, the resource lists of each
// group version (also as one aggregated apidiscovery.k8s.io/v2 document) and the OpenAPI v2 and v3 documents,
// all built from the registry of resource types.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { openApiV3Doc, openApiV3Index, hashOf, openApiV2 } from './openapi.js';
import type { Registry, ResourceType } from './registry.js';
import type { Obj } from './store.js';
import { noSuchResource, send, sendError } from './http.js';

export const VERSION_INFO = {
  major: '1', minor: '32', gitVersion: 'v1.32.0-podvnet-emulator', gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean', buildDate: '2026-01-01T00:00:00Z', goVersion: 'go1.23.0', compiler: 'gc', platform: 'linux/amd64',
};

/**
 * Answers the discovery paths (/api, /apis, a group, a group version, /openapi/...); false for any other
 * path. Called after authorization, as the API server does.
 */
export function serveDiscovery(registry: Registry, path: string, parts: string[], req: IncomingMessage, res: ServerResponse): boolean {
  const aggregated = /g=apidiscovery\.k8s\.io;\s*v=v2;\s*as=APIGroupDiscoveryList/.test(req.headers.accept ?? '');
  if ((path === '/api' || path === '/apis') && aggregated) {
    send(res, 200, aggregatedDiscovery(registry, path === '/api'), [], 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList');
    return true;
  }
  if (path === '/api') {
    send(res, 200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: req.headers.host ?? '' }] });
    return true;
  }
  if (path === '/apis') {
    send(res, 200, groupList(registry));
    return true;
  }
  if (parts[0] === 'apis' && parts.length === 2) {
    const g = groupList(registry).groups.find((x: Obj) => x.name === parts[1]);
    if (!g) sendError(res, noSuchResource());
    else send(res, 200, { kind: 'APIGroup', apiVersion: 'v1', ...g });
    return true;
  }
  if ((parts[0] === 'api' && parts.length === 2) || (parts[0] === 'apis' && parts.length === 3)) {
    const group = parts[0] === 'api' ? '' : parts[1]!;
    const version = parts[0] === 'api' ? parts[1]! : parts[2]!;
    const types = registry.inGroupVersion(group, version);
    if (!types.length) sendError(res, noSuchResource());
    else send(res, 200, resourceList(group, version, types));
    return true;
  }
  if (parts[0] === 'openapi') {
    openapi(registry, parts, res);
    return true;
  }
  return false;
}

function groupList(registry: Registry): Obj {
  const groups: Obj[] = [];
  const all = registry.groups();
  for (const [g, vs] of all) {
    if (g === '') continue;
    const versions = vs.map((v) => ({ groupVersion: `${g}/${v}`, version: v }));
    groups.push({ name: g, versions, preferredVersion: versions[0] });
  }
  return { kind: 'APIGroupList', apiVersion: 'v1', groups };
}

/** apidiscovery.k8s.io/v2 APIGroupDiscoveryList: every group, version and resource in one document. */
function aggregatedDiscovery(registry: Registry, core: boolean): Obj {
  const items: Obj[] = [];
  for (const [g, vs] of registry.groups()) {
    if ((g === '') !== core) continue;
    const versions = vs.map((v) => {
      const list = resourceList(g, v, registry.inGroupVersion(g, v)).resources as Obj[];
      const resources: Obj[] = [];
      for (const r of list) {
        const [name, sub] = String(r.name).split('/');
        if (!sub) {
          const out: Obj = {
            resource: name, responseKind: { group: g, version: v, kind: r.kind }, scope: r.namespaced ? 'Namespaced' : 'Cluster',
            singularResource: r.singularName, verbs: r.verbs,
          };
          if (r.shortNames) out.shortNames = r.shortNames;
          if (r.categories) out.categories = r.categories;
          resources.push(out);
        } else {
          const parent = resources.find((x) => x.resource === name);
          if (!parent) continue;
          (parent.subresources ??= []).push({ subresource: sub, responseKind: { group: r.group ?? g, version: r.version ?? v, kind: r.kind }, verbs: r.verbs });
        }
      }
      return { version: v, resources, freshness: 'Current' };
    });
    items.push({ metadata: { name: g, creationTimestamp: null }, versions });
  }
  return { kind: 'APIGroupDiscoveryList', apiVersion: 'apidiscovery.k8s.io/v2', metadata: {}, items };
}

function resourceList(group: string, version: string, types: ResourceType[]): Obj {
  const resources: Obj[] = [];
  for (const t of types.sort((a, b) => a.plural.localeCompare(b.plural))) {
    const r: Obj = {
      name: t.plural, singularName: t.singular, namespaced: t.namespaced, kind: t.kind,
      verbs: t.review ? ['create'] : ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'],
    };
    if (t.shortNames.length) r.shortNames = t.shortNames;
    if (t.categories.length) r.categories = t.categories;
    resources.push(r);
    if (t.statusSubresource) resources.push({ name: `${t.plural}/status`, singularName: '', namespaced: t.namespaced, kind: t.kind, verbs: ['get', 'patch', 'update'] });
    if (t.scale) resources.push({ name: `${t.plural}/scale`, singularName: '', namespaced: t.namespaced, group: 'autoscaling', version: 'v1', kind: 'Scale', verbs: ['get', 'patch', 'update'] });
    if (t.group === '' && t.kind === 'ServiceAccount') resources.push({ name: 'serviceaccounts/token', singularName: '', namespaced: true, group: 'authentication.k8s.io', version: 'v1', kind: 'TokenRequest', verbs: ['create'] });
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources };
}

function openapi(reg: Registry, parts: string[], res: ServerResponse): void {
  if (parts[1] === 'v2') return send(res, 200, openApiV2(reg));
  if (parts[1] !== 'v3') return sendError(res, noSuchResource());
  if (parts.length === 2) return send(res, 200, openApiV3Index(reg, (g, v) => hashOf(openApiV3Doc(reg, g, v))));
  const group = parts[2] === 'api' ? '' : parts[3]!;
  const version = parts[2] === 'api' ? parts[3]! : parts[4]!;
  if (!version || !reg.inGroupVersion(group, version).length) return sendError(res, noSuchResource());
  return send(res, 200, openApiV3Doc(reg, group, version));
}
