// A real OpenID provider for the dashboard's sign-in tests: panva's oidc-provider (certified
// by the OpenID Foundation), with its own login and consent pages (devInteractions).
//
//   node provider.mjs '{"port": 0, "clients": [...], "accounts": {"ada@example.com": {...}},
//                       "endSession": true}'
//
// Any password signs an account in; the login is the account's e-mail. Each account's claims
// are its "email", "name" and "groups" (scopes email, profile and groups). The provider prints
// one line, {"issuer": "http://127.0.0.1:PORT"}, once it listens, and stops on SIGTERM.
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const options = JSON.parse(process.argv[2] ?? '{}');
const accounts = options.accounts ?? {};

const server = createServer();
server.listen(options.port ?? 0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: options.clients ?? [],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    scopes: ['openid', 'email', 'profile', 'groups'],
    features: {
      devInteractions: { enabled: true },
      // "endSession": false leaves end_session_endpoint out (as Google does)
      rpInitiatedLogout: { enabled: options.endSession ?? true },
    },
    pkce: { required: () => true },
    cookies: { keys: ['okrsync-tests-only'] },
    async findAccount(ctx, sub) {
      const known = accounts[sub];
      if (known === undefined) return undefined;
      return {
        accountId: sub,
        async claims() {
          return {
            sub,
            email: sub,
            email_verified: known.email_verified ?? true,
            name: known.name ?? sub,
            groups: known.groups ?? [],
          };
        },
      };
    },
  });
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  server.on('request', provider.callback());
  console.log(JSON.stringify({ issuer }));
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
