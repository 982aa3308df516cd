/**
 * A container of a Deployment or DaemonSet as `docker run` arguments: the user, capabilities, privilege,
 * read-only root, host network, mounts, environment, command and args that the manifest declares, read from
 * it rather than written out a second time, so a test running the image holds exactly what production
 * would. Pure: the caller creates the host paths (`prepare`) and runs docker.
 */

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

export interface PodRunInput {
  /** The workload's pod template spec (`spec.template.spec`). */
  podSpec: Obj;
  container: string;
  image: string;
  name: string;
  /** Downward-API values by fieldPath (`spec.nodeName`, `status.hostIP`, `metadata.namespace`...). */
  fieldValues: Record<string, string>;
  /**
   * Host paths that must be different on this machine (per test run, not the real /run/podvnet): hostPath
   * volume path -> the directory or file to bind instead. Paths not listed are bound as declared.
   */
  hostPathMap?: Record<string, string>;
  /** What the kubelet adds that no manifest declares (the service account token volume), and test-only mounts. */
  extraMounts?: Array<{ source: string; target: string; readOnly: boolean }>;
  extraEnv?: Record<string, string>;
  /** Flags after the manifest's args (the last of a repeated flag wins in our parsers). */
  extraArgs?: string[];
}

export interface PodRun {
  /** Arguments for `docker run` (after "run"). */
  args: string[];
  /** Host directories and files to create first (hostPath types DirectoryOrCreate and FileOrCreate). */
  prepare: { dirs: string[]; files: string[] };
  user: string | undefined;
}

const QUANTITY = /^(\d+)(Ki|Mi|Gi)?$/;
function bytes(q: string): number {
  const m = QUANTITY.exec(q);
  if (!m) throw new Error(`unsupported quantity ${q}`);
  return Number(m[1]) * ({ Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 }[m[2] as 'Ki' | 'Mi' | 'Gi'] ?? 1);
}

export function podDockerRun(input: PodRunInput): PodRun {
  const { podSpec } = input;
  const c: Obj | undefined = (podSpec.containers ?? []).find((x: Obj) => x.name === input.container);
  if (!c) throw new Error(`no container ${input.container} in the pod spec`);
  const args = ['--rm', '--name', input.name];
  if (podSpec.hostNetwork) args.push('--network', 'host');
  else throw new Error('only hostNetwork pods are supported (PodVNet\'s own pods all are)');
  const security = securityArgs(input.container, podSpec, c);
  const mounts = mountArgs(input, podSpec, c);
  const env = envOf(input, c);
  const expand = expander(env);
  args.push(...security.args, ...mounts.args);
  for (const [k, v] of Object.entries(env)) args.push('--env', `${k}=${v}`);
  args.push(input.image, ...(c.command ?? []).map(expand), ...(c.args ?? []).map(expand), ...(input.extraArgs ?? []));
  return { args, prepare: mounts.prepare, user: security.user };
}

/** The user, privilege, capabilities, read-only root, seccomp profile and memory limit. */
function securityArgs(container: string, podSpec: Obj, c: Obj): { args: string[]; user: string | undefined } {
  const podSec: Obj = podSpec.securityContext ?? {};
  const sec: Obj = c.securityContext ?? {};
  const args: string[] = [];
  const uid = sec.runAsUser ?? podSec.runAsUser;
  const gid = sec.runAsGroup ?? podSec.runAsGroup;
  if ((sec.runAsNonRoot ?? podSec.runAsNonRoot) && (uid === undefined || uid === 0)) {
    throw new Error(`${container}: runAsNonRoot without a non-zero runAsUser`);
  }
  const user = uid === undefined ? undefined : gid === undefined ? String(uid) : `${uid}:${gid}`;
  if (user !== undefined) args.push('--user', user);

  if (sec.privileged) args.push('--privileged');
  for (const cap of sec.capabilities?.drop ?? []) args.push('--cap-drop', cap);
  for (const cap of sec.capabilities?.add ?? []) args.push('--cap-add', cap);
  if (sec.allowPrivilegeEscalation === false) args.push('--security-opt', 'no-new-privileges');
  if (sec.readOnlyRootFilesystem) args.push('--read-only');
  const seccomp = (sec.seccompProfile ?? podSec.seccompProfile)?.type;
  if (seccomp === 'Unconfined') args.push('--security-opt', 'seccomp=unconfined');
  else if (seccomp !== undefined && seccomp !== 'RuntimeDefault') throw new Error(`unsupported seccomp profile ${seccomp}`);
  const memory = c.resources?.limits?.memory;
  if (memory) args.push('--memory', String(bytes(memory)));
  return { args, user };
}

/** The container's volume mounts (hostPath binds, emptyDir tmpfs) and the test's extra mounts. */
function mountArgs(input: PodRunInput, podSpec: Obj, c: Obj): { args: string[]; prepare: PodRun['prepare'] } {
  const args: string[] = [];
  const prepare = { dirs: [] as string[], files: [] as string[] };
  const volumes = new Map<string, Obj>((podSpec.volumes ?? []).map((v: Obj) => [v.name, v]));
  for (const m of c.volumeMounts ?? []) {
    const v = volumes.get(m.name);
    if (!v) throw new Error(`volume ${m.name} is mounted but not declared`);
    if (v.hostPath) {
      const source = input.hostPathMap?.[v.hostPath.path] ?? v.hostPath.path;
      if (v.hostPath.type === 'DirectoryOrCreate') prepare.dirs.push(source);
      if (v.hostPath.type === 'FileOrCreate') prepare.files.push(source);
      let mount = `type=bind,source=${source},target=${m.mountPath}`;
      if (m.readOnly) mount += ',readonly';
      if (m.mountPropagation === 'HostToContainer') mount += ',bind-propagation=rslave';
      else if (m.mountPropagation === 'Bidirectional') mount += ',bind-propagation=rshared';
      args.push('--mount', mount);
    } else if (v.emptyDir) {
      let mount = `type=tmpfs,target=${m.mountPath}`;
      if (v.emptyDir.sizeLimit) mount += `,tmpfs-size=${bytes(v.emptyDir.sizeLimit)}`;
      args.push('--mount', mount);
    } else {
      throw new Error(`volume ${m.name}: only hostPath and emptyDir can be run with docker here`);
    }
  }
  for (const m of input.extraMounts ?? []) {
    args.push('--mount', `type=bind,source=${m.source},target=${m.target}${m.readOnly ? ',readonly' : ''}`);
  }
  return { args, prepare };
}

/** `$(NAME)` of a variable defined so far, as the kubelet expands it; an unknown name stays as written. */
const expander = (env: Record<string, string>) => (s: string) => s.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string) => env[name] ?? whole);

/** The environment: values (expanded in order), downward-API fields, then the test's extra variables. */
function envOf(input: PodRunInput, c: Obj): Record<string, string> {
  const env: Record<string, string> = {};
  const expand = expander(env);
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = expand(String(e.value));
    else if (e.valueFrom?.fieldRef) {
      const v = input.fieldValues[e.valueFrom.fieldRef.fieldPath];
      if (v === undefined) throw new Error(`no value for the downward-API field ${e.valueFrom.fieldRef.fieldPath}`);
      env[e.name] = v;
    } else throw new Error(`env ${e.name}: unsupported source`);
  }
  Object.assign(env, input.extraEnv ?? {});
  return env;
}
