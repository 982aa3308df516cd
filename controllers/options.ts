import { API_GROUP } from '../crds/api/index.js';

export const PROVIDER_ID_ANNOTATION = `${API_GROUP}/provider-id`;
/** Argo CD applies its ignore-resource-updates rules only to resources carrying this annotation. */
export const ARGOCD_IGNORE_UPDATES_ANNOTATION = 'argocd.argoproj.io/ignore-resource-updates';

export interface ControllerOptions {
  workers: number;
  /** Re-read every node's NIC this often even without events (drift, lost events). */
  resyncMs: number;
  /** Re-read a pool subnet (its free addresses) this often; defaults to resyncMs. */
  subnetCacheMs?: number;
  /** Namespace for Events about cluster-scoped objects. */
  eventNamespace: string;
  /** Identity in Events (pod name). */
  instance: string;
  subnetFullBackoffMs: number;
  /**
   * After Azure refused the pool subnet on a node's NIC (IpConfigurationsOnSameNicCannotUseDifferentSubnets):
   * no Azure call for that node for this long, doubling with each refusal up to max(this, resyncMs). Only a
   * change outside the cluster (the platform allowing several subnets per NIC) or of the pool's subnet fixes it.
   */
  subnetNotAllowedBackoffMs: number;
  /** Delay that folds many record changes into one pool status write. */
  poolStatusDelayMs: number;
  retryBaseMs: number;
  /**
   * Longest wait before retrying after a transient Azure failure (5xx, a failed long-running operation, a
   * dropped connection): the backoff doubles from retryBaseMs up to this, and resets on success. Other
   * failures (authorization, bad requests) keep doubling up to 5 minutes. Pods wait for IPs meanwhile;
   * the ARM budget is still kept by the limiter, which holds calls back rather than letting them fail.
   */
  transientRetryMaxMs: number;
}

export const DEFAULT_CONTROLLER_OPTIONS: ControllerOptions = {
  workers: 32,
  resyncMs: 600_000,
  eventNamespace: 'default',
  instance: 'podvnet-controller',
  subnetFullBackoffMs: 30_000,
  subnetNotAllowedBackoffMs: 300_000,
  poolStatusDelayMs: 1000,
  retryBaseMs: 200,
  transientRetryMaxMs: 500,
};
