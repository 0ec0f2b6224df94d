// produce.mjs: the producers, in a worker thread of the peer script.
// PRODUCERS concurrent loops share UNITS units of work and add them in
// batches of BATCH with the peer's bulk API, each over its own connection
// (a pool of PRODUCERS connections); they wait for the "start" message so
// that the peer script starts the clock at the first add.
import { parentPort, workerData } from "node:worker_threads";
import { quiet } from "./common.mjs";

const o = workerData;

async function makeAdder() {
  if (o.peer === "graphile") {
    const { makeWorkerUtils, Logger } = await import("graphile-worker");
    const logger = new Logger((scope) => (level, message) =>
      quiet("graphile-worker producer " + JSON.stringify(scope), level,
            message));
    const utils = await makeWorkerUtils({
      connectionString: o.uri,
      schema: o.schema,
      maxPoolSize: o.producers,
      logger,
    });
    return {
      // addJobs: one statement (graphile_worker.add_jobs) per batch.
      add: (first, n) => {
        const specs = [];
        for (let i = 0; i < n; i++)
          specs.push({ identifier: "noop", payload: { i: first + i } });
        return utils.addJobs(specs);
      },
      close: () => utils.release(),
    };
  }
  if (o.peer === "pgboss") {
    const { PgBoss } = await import("pg-boss");
    const boss = new PgBoss({
      connectionString: o.uri,
      schema: o.schema,
      max: o.producers,
      supervise: false,
      schedule: false,
      migrate: false,
    });
    boss.on("error", (e) => quiet("pg-boss producer", "error", e.message));
    await boss.start();
    return {
      // insert: one INSERT ... SELECT FROM json_to_recordset per batch.
      add: (first, n) => {
        const jobs = [];
        for (let i = 0; i < n; i++) jobs.push({ data: { i: first + i } });
        return boss.insert(o.queue, jobs);
      },
      close: () => boss.stop({ graceful: false, wait: true }),
    };
  }
  throw new Error(`unknown peer ${o.peer}`);
}

const adder = await makeAdder();
parentPort.once("message", async () => {
  let next = 0;
  let batches = 0;
  const t0 = performance.now();
  async function producer() {
    while (next < o.units) {
      const first = next;
      const n = Math.min(o.batch, o.units - first);
      next += n;
      await adder.add(first, n);
      batches++;
    }
  }
  const ps = [];
  for (let p = 0; p < o.producers; p++) ps.push(producer());
  await Promise.all(ps);
  const seconds = (performance.now() - t0) / 1000;
  await adder.close();
  parentPort.postMessage({ type: "done", added: next, batches, seconds });
});
parentPort.postMessage({ type: "ready" });
