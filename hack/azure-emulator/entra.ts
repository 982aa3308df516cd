// A minimal Microsoft Entra ID token endpoint, so @azure/identity credentials (client secret, workload
// identity's client assertion) can run their real flow against the emulator: point `authorityHost` at the
// emulator's URL, pass `disableInstanceDiscovery: true` and `tlsOptions: { ca }`.
import { randomBytes } from 'node:crypto';

export interface EntraReply { status: number; body: unknown }

export interface EntraOptions {
  /** clientId -> secret. Empty: any client id with any secret or assertion gets a token. */
  clients: Record<string, string>;
  tokenLifetimeSeconds: number;
}

const GUID_OR_NAME = /^[A-Za-z0-9.-]{1,80}$/;

export class EntraTokens {
  private readonly issued = new Map<string, number>();
  /** Tokens handed out, by client id (inspection for tests). */
  readonly byClient = new Map<string, number>();

  /** Handles /<tenant>/v2.0/.well-known/openid-configuration and /<tenant>/oauth2/v2.0/token; undefined if not an Entra path. */
  handle(method: string, segs: string[], rawBody: string, origin: string, opts: EntraOptions): EntraReply | undefined {
    const lsegs = segs.map((s) => s.toLowerCase());
    const tenant = segs[0];
    if (!tenant || !GUID_OR_NAME.test(tenant)) return undefined;
    if (method === 'GET' && lsegs.slice(1).join('/') === 'v2.0/.well-known/openid-configuration') {
      const base = `${origin}/${tenant}`;
      return {
        status: 200,
        body: {
          token_endpoint: `${base}/oauth2/v2.0/token`,
          authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
          end_session_endpoint: `${base}/oauth2/v2.0/logout`,
          jwks_uri: `${base}/discovery/v2.0/keys`,
          issuer: `${base}/v2.0`,
          token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
          response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
          scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
          tenant_region_scope: 'NA',
        },
      };
    }
    if (method === 'POST' && lsegs.slice(1).join('/') === 'oauth2/v2.0/token') return this.token(new URLSearchParams(rawBody), opts);
    return undefined;
  }

  /** A new bearer token for this client (or managed identity), counted and accepted by ARM until it expires. */
  issue(clientId: string, lifetimeSeconds: number): string {
    const token = randomBytes(24).toString('base64url');
    this.issued.set(token, Date.now() + lifetimeSeconds * 1000);
    this.byClient.set(clientId, (this.byClient.get(clientId) ?? 0) + 1);
    return token;
  }

  isIssued(token: string): boolean {
    const exp = this.issued.get(token);
    return exp !== undefined && exp > Date.now();
  }

  private token(form: URLSearchParams, opts: EntraOptions): EntraReply {
    const fail = (status: number, error: string, code: number, description: string): EntraReply => ({
      status,
      body: { error, error_description: `AADSTS${code}: ${description}`, error_codes: [code], timestamp: new Date().toISOString() },
    });
    if (form.get('grant_type') !== 'client_credentials') return fail(400, 'unsupported_grant_type', 70003, 'The app requested an unsupported grant type.');
    const clientId = form.get('client_id');
    if (!clientId) return fail(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'client_id'.");
    const scope = form.get('scope') ?? '';
    if (!scope.split(' ').some((s) => s.endsWith('/.default'))) return fail(400, 'invalid_scope', 1002012, 'The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.');
    const secret = form.get('client_secret');
    const assertion = form.get('client_assertion');
    if (!secret && !assertion) return fail(401, 'invalid_client', 7000216, "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.");
    const known = Object.keys(opts.clients).length > 0;
    if (known && !(clientId in opts.clients)) return fail(400, 'unauthorized_client', 700016, `Application with identifier '${clientId}' was not found in the directory.`);
    if (known && secret && opts.clients[clientId] !== secret) return fail(401, 'invalid_client', 7000215, 'Invalid client secret provided.');
    const token = this.issue(clientId, opts.tokenLifetimeSeconds);
    return {
      status: 200,
      body: { token_type: 'Bearer', expires_in: opts.tokenLifetimeSeconds, ext_expires_in: opts.tokenLifetimeSeconds, access_token: token },
    };
  }
}
