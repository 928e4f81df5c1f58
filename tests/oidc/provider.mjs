// A real OpenID Connect provider for the sign-in tests (oidc-provider 9.13.3, test use only).
//
//   npm ci --prefix tests/oidc          # once (`make test` does it when node_modules is missing)
//   OIDC_PORT=9400 OIDC_REDIRECT_URIS=http://localhost:8501/oauth2callback node tests/oidc/provider.mjs
//
// Settings (environment):
//   OIDC_PORT                 port on 127.0.0.1 (default 9400); the issuer is http://127.0.0.1:<port>
//   OIDC_REDIRECT_URIS        comma-separated callbacks of the static client (default
//                             http://localhost:8501/oauth2callback); also its post-logout URIs
//   OIDC_CLIENT_ID            static client (default rollout-dashboard)
//   OIDC_CLIENT_SECRET        its secret (default rollout-dashboard-test-secret)
//   OIDC_REGISTRATION_TOKEN   when set, dynamic client registration (RFC 7591) at /reg with this
//                             initial access token: the tests register one client per dashboard
//                             port, each with its exact redirect_uri
//   OIDC_ACCOUNTS             JSON {"e-mail": ["group", ...]} added to the table below
//
// Accounts: any login name is an account, any non-empty password is accepted (the built-in
// form of `devInteractions`). Its ID token carries sub, email, email_verified, name and, with
// the `groups` scope, groups:
//   alice@example.com  [oncall]      bob@example.com    [oncall]
//   carol@example.com  [admins]      victor@example.com []          anyone else: []
import Provider from 'oidc-provider';

const {
  OIDC_PORT = '9400',
  OIDC_REDIRECT_URIS = 'http://localhost:8501/oauth2callback',
  OIDC_CLIENT_ID = 'rollout-dashboard',
  OIDC_CLIENT_SECRET = 'rollout-dashboard-test-secret',
  OIDC_REGISTRATION_TOKEN = '',
  OIDC_ACCOUNTS = '{}',
} = process.env;

const ISSUER = `http://127.0.0.1:${OIDC_PORT}`; // not localhost: its cookies stay off the app's origin
const CALLBACKS = OIDC_REDIRECT_URIS.split(',').map((uri) => uri.trim()).filter(Boolean);
const GROUPS = {
  'alice@example.com': ['oncall'],
  'bob@example.com': ['oncall'],
  'carol@example.com': ['admins'],
  'victor@example.com': [],
  ...JSON.parse(OIDC_ACCOUNTS),
};

function displayName(login) {
  const local = login.split('@')[0];
  return local.charAt(0).toUpperCase() + local.slice(1);
}

const oidc = new Provider(ISSUER, {
  clients: [{
    client_id: OIDC_CLIENT_ID,
    client_secret: OIDC_CLIENT_SECRET, // client_secret_basic, as Authlib sends it
    redirect_uris: CALLBACKS,
    post_logout_redirect_uris: CALLBACKS,
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  findAccount: (ctx, id) => ({
    accountId: id,
    claims: () => ({
      sub: id,
      email: id,
      email_verified: true,
      name: displayName(id),
      groups: GROUPS[id.toLowerCase()] ?? [],
    }),
  }),
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'], // a scope of its own, as Dex and many others have it
  },
  conformIdTokenClaims: false, // the claims go into the ID token: st.user reads nothing else
  cookies: { keys: ['test-only-cookie-key'] },
  features: {
    devInteractions: { enabled: true }, // the built-in login form
    registration: {
      enabled: Boolean(OIDC_REGISTRATION_TOKEN),
      initialAccessToken: OIDC_REGISTRATION_TOKEN || false,
    },
    rpInitiatedLogout: {
      enabled: true,
      // confirm "Do you want to sign-out?" at once, as a person clicking "Yes" would
      logoutSource: (ctx, form) => {
        ctx.body = `<!DOCTYPE html><html><body>${form}<script>
          const f = document.forms[0], i = document.createElement('input');
          i.type = 'hidden'; i.name = 'logout'; i.value = 'yes'; f.appendChild(i); f.submit();
          </script></body></html>`;
      },
    },
  },
  // no consent page: grant the scopes the client asked for
  async loadExistingGrant(ctx) {
    const { client, session, result, provider } = ctx.oidc;
    const id = result?.consent?.grantId || session.grantIdFor(client.clientId);
    if (id) return provider.Grant.find(id);
    const grant = new provider.Grant({ clientId: client.clientId, accountId: session.accountId });
    grant.addOIDCScope([...ctx.oidc.requestParamScopes].join(' '));
    await grant.save();
    return grant;
  },
});

oidc.on('authorization.error', (ctx, err) => {
  console.error('authorization.error', err.message, err.error_description ?? '');
});
oidc.on('grant.error', (ctx, err) => {
  console.error('grant.error', err.message, err.error_description ?? '');
});

oidc.listen(Number(OIDC_PORT), '127.0.0.1', () => {
  console.log(`OP ready: ${ISSUER}/.well-known/openid-configuration`);
});
