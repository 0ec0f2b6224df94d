// pgboss.mjs: pg-boss 12 under the issue-9 workload.
//
//   node pgboss.mjs --uri URI --schema S [--units 30000] [--batch 100]
//        [--producers 4] [--concurrency 16] [--fetch 100]
//
// One queue; boss.insert() adds each batch in one statement; boss.work()
// with batchSize --fetch (100) and localConcurrency --concurrency (16): 16
// polling loops each fetching up to 100 jobs and completing them together.
// Its documented throughput options on top: burstWhenBatchFull (fetch again
// at once while fetches come back full), pollingIntervalSeconds 0.5 (the
// least allowed) and LISTEN/NOTIFY (useListenNotify, queue notify: true), so
// an idle worker wakes when jobs arrive rather than at its next poll. A pool
// of concurrency + 4 connections, a no-op handler, a quiet log (pg-boss only
// emits "error"/"warning" events). Per job: one row inserted into the job
// table (state created), updated to active by the fetch (retry_count + 1,
// started_on), updated to completed by the complete; the row stays until the
// retention cleanup. "Open" = a job of the queue in a state before completed.
import { PgBoss } from "pg-boss";
import {
  parseArgs, DEFAULTS, quiet, dropSchema, startProducers, waitNoneOpen,
  whenCount, report,
} from "./common.mjs";

const o = parseArgs(process.argv.slice(2), { ...DEFAULTS, fetch: 100 });
const queue = "bench";
const pool = o.concurrency + 4;
const work = {
  batchSize: o.fetch,
  localConcurrency: o.concurrency,
  pollingIntervalSeconds: 0.5,
  burstWhenBatchFull: true,
};

await dropSchema(o.uri, o.schema);
const boss = new PgBoss({
  connectionString: o.uri,
  schema: o.schema,
  max: pool,
  useListenNotify: true,
});
boss.on("error", (e) => quiet("pg-boss", "error", e.message));
boss.on("warning", (w) =>
  quiet("pg-boss", "warning", w.message || JSON.stringify(w)));
await boss.start();
await boss.createQueue(queue, { notify: true });

let done = 0;
await boss.work(queue, work, async (jobs) => { done += jobs.length; });

const prod = startProducers("pgboss", { ...o, queue });
await prod.ready;
const t0 = performance.now();
const deadline = t0 + o.timeout * 1000;
prod.start();
const added = await prod.done;
await whenCount(() => done, o.units, deadline);
const tTasks = performance.now();
const tEnd = await waitNoneOpen(
  o.uri,
  `SELECT count(*) AS n FROM ${o.schema}.job WHERE name = $1` +
    ` AND state < 'completed'`,
  [queue], deadline);
await boss.stop({ graceful: true, timeout: 5000 });
await dropSchema(o.uri, o.schema);

const seconds = tEnd === null ? null : (tEnd - t0) / 1000;
report({
  peer: "pg-boss",
  version: "12.38.0",
  mode: "batch",
  units: o.units,
  seconds,
  units_per_s: seconds ? o.units / seconds : null,
  drained: tEnd !== null,
  tasks_run: done,
  tasks_seconds: (tTasks - t0) / 1000,
  add_seconds: added.seconds,
  add_batches: added.batches,
  configured: {
    batch: o.batch, producers: o.producers, max: pool,
    producer_pool: o.producers, schema: o.schema, queue_notify: true,
    useListenNotify: true, work, handler: "no-op",
    logger: "error and warning events only",
  },
  node: process.version,
});
process.exit(tEnd === null ? 1 : 0);
