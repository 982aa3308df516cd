import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';

/**
 * A real Prometheus (Debian's `prometheus` package) for tests and the sandbox: its own data directory and a
 * free loopback port, static scrape targets, optional rule files, and small clients for the HTTP API.
 */

export interface ScrapeTarget {
  job: string;
  /** host:port of a /metrics endpoint. */
  address: string;
  /** Target labels, as service discovery and relabelling would give them (e.g. `node`). */
  labels?: Record<string, string>;
}

export interface PrometheusOptions {
  targets: ScrapeTarget[];
  /** Rule groups (the `spec` of a PrometheusRule). */
  rules?: unknown;
  scrapeIntervalSeconds?: number;
  evaluationIntervalSeconds?: number;
  /** The binary (default: prometheus on PATH). */
  binary?: string;
  logFile?: string;
}

export interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface Alert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing';
  activeAt: string;
}

/** A free TCP port on loopback (the kernel picks it; Prometheus binds it a moment later). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

export class Prometheus {
  private constructor(readonly url: string, private readonly child: ChildProcess, private readonly dir: string) {}

  static async start(o: PrometheusOptions): Promise<Prometheus> {
    const dir = mkdtempSync(path.join(tmpdir(), 'podvnet-prometheus-'));
    const interval = `${o.scrapeIntervalSeconds ?? 1}s`;
    const byJob = new Map<string, ScrapeTarget[]>();
    for (const t of o.targets) byJob.set(t.job, [...(byJob.get(t.job) ?? []), t]);
    const config = {
      global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: `${o.evaluationIntervalSeconds ?? 1}s` },
      rule_files: o.rules ? ['rules.yaml'] : [],
      scrape_configs: [...byJob].map(([job, ts]) => ({
        job_name: job,
        static_configs: ts.map((t) => ({ targets: [t.address], labels: t.labels ?? {} })),
      })),
    };
    writeFileSync(path.join(dir, 'prometheus.yml'), stringify(config));
    if (o.rules) writeFileSync(path.join(dir, 'rules.yaml'), stringify(o.rules));
    for (let attempt = 0; ; attempt++) {
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      const child = spawn(o.binary ?? 'prometheus', [
        `--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`, '--storage.tsdb.retention.time=1d', '--web.enable-lifecycle',
      ], { stdio: ['ignore', 'pipe', 'pipe'] });
      const log = createWriteStream(o.logFile ?? path.join(dir, 'prometheus.log'));
      child.stdout!.pipe(log);
      child.stderr!.pipe(log);
      const p = new Prometheus(url, child, dir);
      const ready = await p.waitReady(30_000).then(() => true, () => false);
      if (ready) return p;
      await p.stop(false);
      // another process took the port between our probe and Prometheus binding it: try another
      if (attempt >= 3) { rmSync(dir, { recursive: true, force: true }); throw new Error(`prometheus did not become ready (log: ${o.logFile ?? 'removed'})`); }
    }
  }

  private async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.child.exitCode !== null) throw new Error('prometheus exited');
      const ok = await fetch(`${this.url}/-/ready`).then((r) => r.ok, () => false);
      if (ok) return;
      if (Date.now() > deadline) throw new Error('prometheus not ready');
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  private async api<T>(p: string, params: Record<string, string | string[]> = {}): Promise<T> {
    const u = new URL(`/api/v1/${p}`, this.url);
    for (const [k, v] of Object.entries(params)) for (const x of [v].flat()) u.searchParams.append(k, x);
    const r = await fetch(u);
    const body = await r.json() as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${p}: ${body.error ?? r.status}`);
    return body.data;
  }

  /** An instant query: the samples of its vector (a scalar comes back as one sample without labels). */
  async query(expr: string): Promise<Sample[]> {
    const d = await this.api<{ resultType: string; result: unknown }>('query', { query: expr });
    if (d.resultType === 'vector') return d.result as Sample[];
    if (d.resultType === 'scalar') return [{ metric: {}, value: d.result as [number, string] }];
    throw new Error(`prometheus query ${expr}: a ${d.resultType}`);
  }

  async series(match: string): Promise<Array<Record<string, string>>> {
    return this.api('series', { 'match[]': match });
  }

  async alerts(): Promise<Alert[]> {
    return (await this.api<{ alerts: Alert[] }>('alerts')).alerts;
  }

  async targets(): Promise<Array<{ labels: Record<string, string>; health: string; lastError: string }>> {
    return (await this.api<{ activeTargets: Array<{ labels: Record<string, string>; health: string; lastError: string }> }>('targets')).activeTargets;
  }

  async stop(removeData = true): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      await new Promise<void>((resolve) => {
        const hard = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
        this.child.once('exit', () => { clearTimeout(hard); resolve(); });
        this.child.kill('SIGTERM');
      });
    }
    if (removeData) rmSync(this.dir, { recursive: true, force: true });
  }
}
