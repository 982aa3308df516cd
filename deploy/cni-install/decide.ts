/**
 * When the installer is told to stop, should the CNI files go? Only when PodVNet is being uninstalled:
 * the DaemonSet is gone or being deleted. A rolling update, a node drain or a restart keeps them, so the
 * node's pods keep working and the kubelet keeps the node Ready. When in doubt (the API server cannot be
 * asked), keep them: a leftover file is harmless to remove by hand; a missing one breaks every pod start.
 */

export type DaemonSetLookup =
  | { kind: 'found'; uid: string; deleting: boolean }
  | { kind: 'not-found' }
  | { kind: 'error'; message: string };

export interface StopDecision {
  remove: boolean;
  reason: string;
}

export function decideOnStop(uidAtStart: string | undefined, now: DaemonSetLookup): StopDecision {
  switch (now.kind) {
    case 'not-found':
      return { remove: true, reason: 'the DaemonSet is gone: PodVNet is being uninstalled' };
    case 'error':
      return { remove: false, reason: `cannot tell whether PodVNet is being uninstalled (${now.message}); keeping the CNI files` };
    case 'found':
      if (now.deleting) return { remove: true, reason: 'the DaemonSet is being deleted: PodVNet is being uninstalled' };
      if (uidAtStart !== undefined && now.uid !== uidAtStart) {
        return { remove: false, reason: 'the DaemonSet was replaced; its pods install the CNI files again' };
      }
      return { remove: false, reason: 'the DaemonSet is still there (update, drain or restart); keeping the CNI files' };
  }
}
