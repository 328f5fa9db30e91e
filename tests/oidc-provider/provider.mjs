// Minimal, real OpenID Connect provider (panva/oidc-provider) for Agentdesk
// integration tests. See README.md for the contract (env vars, ready line,
// account rule, and the exact HTTP walk a test has to perform).
import { createHash, generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';

// stdout carries exactly one line (the ready line). oidc-provider prints its
// notices with console.info (i.e. to stdout) and console.warn, so route all of
// that to stderr and drop the expected "development-only" chatter.
const noise = /oidc-provider (WARNING|NOTICE): (a quick start development-only|default \S+ function called|configuration cookies.keys is missing)/;
for (const level of ['log', 'info', 'warn']) {
  console[level] = (...args) => { if (!noise.test(String(args[0]))) console.error(...args); };
}
// Die with the parent: it holds our stdin, EOF/close means it is gone.
const stop = () => process.exit(0);
process.stdin.on('end', stop).on('close', stop).on('error', stop).resume();
process.on('SIGTERM', stop).on('SIGINT', stop);

// Imported only after the console shim, its module body may already print.
const { default: Provider } = await import('oidc-provider');

// Clients: [{client_id, client_secret, redirect_uris}]. Registered as
// client_secret_basic; oidc-provider 8.x accepts client_secret_post for such a
// client as well (it treats the two secret methods as interchangeable).
const clients = JSON.parse(process.env.OIDC_CLIENTS || '[]').map((c) => ({
  client_id: c.client_id,
  client_secret: c.client_secret,
  redirect_uris: c.redirect_uris,
  token_endpoint_auth_method: 'client_secret_basic',
  grant_types: ['authorization_code'],
  response_types: ['code'],
  id_token_signed_response_alg: 'RS256',
}));

// Fresh RS256 signing key per run; published at /jwks.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: `rs256-${Date.now()}`, use: 'sig', alg: 'RS256' };

// Accounts: any login is an email address; every password is accepted.
//   sub            = 'sub-' + first 24 hex of sha256(lowercased login)
//   email_verified = false iff the local part starts with "unverified", or the login is
//                    "unverified:<email>" (another account, claiming <email> unproven)
//   email          = the login without an "unverified:" prefix
//   name           = the local part
async function findAccount(ctx, id) {
  const login = String(id);
  const claimOnly = login.startsWith('unverified:');
  const email = claimOnly ? login.slice('unverified:'.length) : login;
  const local = email.split('@')[0];
  const sub = `sub-${createHash('sha256').update(login.toLowerCase()).digest('hex').slice(0, 24)}`;
  return {
    accountId: id,
    claims: async () => ({
      sub, email, email_verified: !claimOnly && !local.startsWith('unverified'), name: local,
    }),
  };
}

// Bind first: the issuer must contain the real port.
const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject).listen(Number(process.env.OIDC_PORT || 0), '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [jwk] },
  findAccount,
  scopes: ['openid', 'email', 'profile'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  conformIdTokenClaims: false, // put scope claims into the ID token itself
  pkce: { methods: ['S256'], required: () => true },
  features: { devInteractions: { enabled: true } }, // built-in login + consent forms
  // Plain-http test cookies: avoid SameSite=None (the default for the session
  // cookie), which strict cookie jars/browsers reject without Secure.
  cookies: { long: { httpOnly: true, sameSite: 'lax' }, short: { httpOnly: true, sameSite: 'lax' } },
  // Explicit TTLs (seconds) so oidc-provider does not nag about defaults.
  ttl: {
    AccessToken: 3600, AuthorizationCode: 60, IdToken: 3600, Grant: 3600, Interaction: 3600, Session: 3600,
  },
});
// Static clients are validated lazily; load them now so a bad OIDC_CLIENTS
// fails here (non-zero exit, no ready line) instead of at the first request.
for (const { client_id: id } of clients) await provider.Client.find(id);

// Make failures visible in the test's captured stderr.
for (const event of ['server_error', 'authorization.error', 'grant.error']) {
  provider.on(event, (ctx, err) => console.error(`oidc-provider ${event}: ${err?.message} ${err?.error_description ?? ''}`));
}
server.on('request', provider.callback());
process.stdout.write(`OIDC_PROVIDER_READY ${issuer}\n`);
