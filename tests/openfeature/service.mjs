// A service evaluating flags through the real OpenFeature JS server SDK, with the real
// MetricsHook and the real OpenTelemetry Prometheus exporter: what a team on OpenFeature
// runs. tests/support/openfeature.py starts it and scrapes it with a real Prometheus.
//
//   node service.mjs PLAN.json
//
// PLAN: {"environment": "production", "port": 9464, "out": "counted.json", "tick_ms": 250,
//        "flags": {"<key>": {"fail": 20, "targeted": 0, "treatment": 45, "control": 135}}}
// Every tick, each flag is evaluated once for each of fail + targeted + treatment +
// control users: the first `fail` users' evaluations throw in the provider, the next
// `targeted` get the treatment by TARGETING_MATCH, then `treatment` and `control` users
// get "on" / "off" by SPLIT. What the SDK returned is counted (not what was planned)
// and written to `out` after every tick, with the time each tick ended. The first line
// on stdout, {"port": N}, says the exporter listens.
//
// Two traps of the JS side, both handled here: the hook imports @opentelemetry/api-logs
// although its package declares it optional, and it takes its meter when constructed,
// so the global MeterProvider must be set before `new MetricsHook()`.
import { readFileSync, renameSync, writeFileSync } from "node:fs";

import { MetricsHook } from "@openfeature/open-telemetry-hooks";
import { GeneralError, OpenFeature, StandardResolutionReasons } from "@openfeature/server-sdk";
import { metrics } from "@opentelemetry/api";
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { MeterProvider } from "@opentelemetry/sdk-metrics";

const plan = JSON.parse(readFileSync(process.argv[2], "utf8"));

/** An in-memory provider whose every evaluation the plan decides, by the user's number. */
class PlannedProvider {
  metadata = { name: "planned-in-memory" };
  runsOn = "server";

  constructor(flags) {
    this.flags = flags;
  }

  async resolveBooleanEvaluation(flagKey, defaultValue, context) {
    const spec = this.flags[flagKey];
    const user = Number(context.targetingKey) % size(spec);
    if (user < spec.fail) {
      throw new GeneralError(`planned failure of ${flagKey}`);
    }
    if (user < spec.fail + spec.targeted) {
      return { value: true, variant: "on", reason: StandardResolutionReasons.TARGETING_MATCH };
    }
    const on = user < spec.fail + spec.targeted + spec.treatment;
    return { value: on, variant: on ? "on" : "off", reason: StandardResolutionReasons.SPLIT };
  }

  async resolveStringEvaluation() {
    throw new GeneralError("not planned");
  }

  async resolveNumberEvaluation() {
    throw new GeneralError("not planned");
  }

  async resolveObjectEvaluation() {
    throw new GeneralError("not planned");
  }
}

function size(spec) {
  return spec.fail + spec.targeted + spec.treatment + spec.control;
}

// port 0 would mean the exporter's default (9464): the caller picks a free one
const exporter = new PrometheusExporter({ host: "127.0.0.1", port: plan.port });
const meterProvider = new MeterProvider({
  resource: resourceFromAttributes({
    "service.name": "openfeature-test-service",
    "service.version": "1.0.0",
    "deployment.environment.name": plan.environment,
  }),
  readers: [exporter],
});
metrics.setGlobalMeterProvider(meterProvider); // before the hook: it takes its meter now
OpenFeature.addHooks(new MetricsHook());
await OpenFeature.setProviderAndWait(new PlannedProvider(plan.flags));
const client = OpenFeature.getClient();

const counted = {};
for (const key of Object.keys(plan.flags)) {
  counted[key] = { evaluations: 0, errors: 0, variants: {}, reasons: {} };
}

function add(table, name) {
  table[name] = (table[name] ?? 0) + 1;
}

const tickTimes = []; // when each tick's evaluations were done (epoch seconds)

async function tick() {
  for (const [key, spec] of Object.entries(plan.flags)) {
    const evaluations = [];
    for (let user = 0; user < size(spec); user += 1) {
      evaluations.push(client.getBooleanDetails(key, false, { targetingKey: String(user) }));
    }
    for (const details of await Promise.all(evaluations)) {
      const tally = counted[key];
      tally.evaluations += 1;
      if (details.errorCode) {
        tally.errors += 1;
      } else {
        add(tally.variants, details.variant);
      }
      add(tally.reasons, details.reason);
    }
  }
  tickTimes.push(Date.now() / 1000);
  const out = `${plan.out}.tmp`;
  writeFileSync(
    out,
    JSON.stringify({ environment: plan.environment, tick_times: tickTimes, flags: counted }),
  );
  renameSync(out, plan.out);
}

await tick();
setInterval(tick, plan.tick_ms ?? 250);
// The exporter listens once constructed; its address is known once the server is bound.
const port = await new Promise((resolve) => {
  const server = exporter._server;
  if (server.listening) resolve(server.address().port);
  else server.once("listening", () => resolve(server.address().port));
});
process.stdout.write(`${JSON.stringify({ port })}\n`);
