// TokenRequest (POST serviceaccounts/<name>/token): a new bearer token for a service account, which the
// server then authenticates as that account.
import { randomBytes, randomUUID } from 'node:crypto';
import type { UserInfo } from './admission.js';
import type { Api } from './api.js';
import { conflict } from './status.js';
import type { Obj } from './store.js';

/**
 * TokenRequest (serviceaccounts/<name>/token): a new bearer token for the service account. Bound to
 * a Pod, it carries the pod's node in user extra, as pod-bound tokens do since Kubernetes 1.30.
 */
export function tokenRequest(api: Api, users: Map<string, UserInfo>, ns: string, name: string, body: Obj): Obj {
  const saType = api.type('', 'v1', 'serviceaccounts');
  const sa = api.get(saType, ns, name);
  const spec = body.spec ?? {};
  const extra: Record<string, string[]> = {};
  const bound = spec.boundObjectRef;
  if (bound?.kind === 'Pod') {
    const pod = api.get(api.type('', 'v1', 'pods'), ns, bound.name);
    if (bound.uid && bound.uid !== pod.metadata.uid) throw conflict({ group: '', plural: 'pods', kind: 'Pod' }, bound.name, `the UID in the bound object reference (${bound.uid}) does not match the UID in record (${pod.metadata.uid})`);
    extra['authentication.kubernetes.io/pod-name'] = [pod.metadata.name];
    extra['authentication.kubernetes.io/pod-uid'] = [pod.metadata.uid];
    const nodeName = pod.spec?.nodeName;
    if (nodeName) {
      extra['authentication.kubernetes.io/node-name'] = [nodeName];
      const node = api.store.get('core/nodes', nodeName);
      if (node) extra['authentication.kubernetes.io/node-uid'] = [node.metadata.uid];
    }
  }
  const token = randomBytes(32).toString('base64url');
  const credentialId = `JTI=${randomUUID()}`;
  extra['authentication.kubernetes.io/credential-id'] = [credentialId];
  users.set(token, {
    username: `system:serviceaccount:${ns}:${name}`, uid: sa.metadata.uid,
    groups: ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'], extra,
  });
  const expirationSeconds = Number(spec.expirationSeconds ?? 3600);
  return {
    kind: 'TokenRequest', apiVersion: 'authentication.k8s.io/v1',
    metadata: { name, namespace: ns, creationTimestamp: null },
    spec: { audiences: spec.audiences?.length ? spec.audiences : ['https://kubernetes.default.svc.cluster.local'], expirationSeconds, boundObjectRef: bound ?? null },
    status: { token, expirationTimestamp: new Date(Date.now() + expirationSeconds * 1000).toISOString().replace(/\.\d+Z$/, 'Z') },
  };
}
