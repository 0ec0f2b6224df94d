// graphile.mjs: Graphile Worker 0.18 under the issue-9 workload.
//
//   node graphile.mjs --uri URI --schema S [--mode defaults|fast]
//        [--units 30000] [--batch 100] [--producers 4] [--concurrency 16]
//
// --mode defaults: Graphile Worker's defaults but for concurrency and pool.
// --mode fast: its documented high-throughput settings
// (https://worker.graphile.org/docs/performance): localQueue.size 500,
// completeJobBatchDelay 0, failJobBatchDelay 0.
// Both: a no-op task, a quiet logger, maxPoolSize = concurrency + 1 (as in
// the documented configuration: 24 jobs, 25 connections). The schema is
// dropped first, so every run starts from an empty queue. Per job, Worker
// inserts one row into _private_jobs (add_jobs), updates it when a worker
// locks it (get_job / the local queue's batch fetch) and deletes it when the
// task returns (complete_job / the batched complete). "Open" = a row left.
import { run, runMigrations, Logger } from "graphile-worker";
import {
  parseArgs, DEFAULTS, quiet, dropSchema, startProducers, waitNoneOpen,
  whenCount, report,
} from "./common.mjs";

const o = parseArgs(process.argv.slice(2), { ...DEFAULTS, mode: "fast" });
if (o.mode !== "fast" && o.mode !== "defaults")
  throw new Error(`--mode ${o.mode}: defaults or fast`);
const logger = new Logger((scope) => (level, message) =>
  quiet("graphile-worker", level, message));
const worker = o.mode === "fast"
  ? { localQueue: { size: 500 }, completeJobBatchDelay: 0,
      failJobBatchDelay: 0 }
  : {};
const pool = o.concurrency + 1;

await dropSchema(o.uri, o.schema);
await runMigrations({ connectionString: o.uri, schema: o.schema, logger });

let done = 0;
const runner = await run({
  connectionString: o.uri,
  schema: o.schema,
  concurrency: o.concurrency,
  maxPoolSize: pool,
  noHandleSignals: true,
  logger,
  taskList: { noop: async () => { done++; } },
  preset: { worker },
});

const prod = startProducers("graphile", o);
await prod.ready;
const t0 = performance.now();
const deadline = t0 + o.timeout * 1000;
prod.start();
const added = await prod.done;
await whenCount(() => done, o.units, deadline);
const tTasks = performance.now();
const tEnd = await waitNoneOpen(
  o.uri, `SELECT count(*) AS n FROM ${o.schema}._private_jobs`, [], deadline);
await runner.stop();
await dropSchema(o.uri, o.schema);

const seconds = tEnd === null ? null : (tEnd - t0) / 1000;
report({
  peer: "graphile-worker",
  version: "0.18.0",
  mode: o.mode,
  units: o.units,
  seconds,
  units_per_s: seconds ? o.units / seconds : null,
  drained: tEnd !== null,
  tasks_run: done,
  tasks_seconds: (tTasks - t0) / 1000,
  add_seconds: added.seconds,
  add_batches: added.batches,
  configured: {
    batch: o.batch, producers: o.producers, concurrency: o.concurrency,
    maxPoolSize: pool, producer_pool: o.producers, schema: o.schema,
    worker, task: "no-op", logger: "warnings and errors only",
  },
  node: process.version,
});
process.exit(tEnd === null ? 1 : 0);
