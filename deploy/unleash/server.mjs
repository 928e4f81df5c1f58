// A local Unleash server (unleash-server 8.2.0, pinned in package.json) for the tests and for
// `rollout-dashboard demo --with-unleash`; app/demo/unleash_server.py starts it.
// Everything comes from the environment: DATABASE_URL, PORT and the initial tokens, which
// Unleash applies only to an empty api_tokens table: an admin token (UNLEASH_ADMIN_TOKEN named
// UNLEASH_ADMIN_TOKEN_NAME) and one backend (SDK) token per environment of
// UNLEASH_SDK_ENVIRONMENTS, `default:<environment>.<UNLEASH_SDK_SECRET>`, named `sdk-<environment>`.
// UNLEASH_OTHER_ADMIN_TOKENS (`name=secret,…`) adds admin tokens of other names: someone else
// writing in Unleash (the tests' "person in Unleash's own UI"; v8 makes admin tokens only here).
// No version check, no telemetry: nothing leaves the machine.
import { start } from 'unleash-server';

const sdkEnvironments = (process.env.UNLEASH_SDK_ENVIRONMENTS ?? '').split(',').filter(Boolean);
const otherAdmins = (process.env.UNLEASH_OTHER_ADMIN_TOKENS ?? '').split(',').filter(Boolean);
const started = Date.now();
await start({
  databaseUrl: process.env.DATABASE_URL,
  db: { ssl: false },
  server: { host: '127.0.0.1', port: Number(process.env.PORT) },
  versionCheck: { enable: false },
  telemetry: false,
  authentication: {
    initApiTokens: [
      { secret: process.env.UNLEASH_ADMIN_TOKEN, type: 'admin', tokenName: process.env.UNLEASH_ADMIN_TOKEN_NAME,
        projects: ['*'], environment: '*' },
      ...otherAdmins.map((pair) => {
        const [tokenName, secret] = pair.split('=');
        return { secret, type: 'admin', tokenName, projects: ['*'], environment: '*' };
      }),
      ...sdkEnvironments.map((environment) => ({
        secret: `default:${environment}.${process.env.UNLEASH_SDK_SECRET}`, type: 'backend',
        tokenName: `sdk-${environment}`, projects: ['default'], environment,
      })),
    ],
  },
  logLevel: process.env.LOG_LEVEL ?? 'warn',
});
console.log(`unleash started in ${Date.now() - started} ms`);
