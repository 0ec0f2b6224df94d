// common.mjs: what every peer script shares (bench/README.md, "The peers").
//
// A peer script runs one repetition of the issue-9 workload against a
// PostgreSQL URI: UNITS units of work added in batches of BATCH by PRODUCERS
// producers WHILE the workers run; the clock runs from the first add until
// no job is left open. The producers run in a worker thread (produce.mjs),
// so that adding jobs does not share an event loop with the workers — as
// orderd's load generator is a process of its own. It prints one JSON object.
import { Worker } from "node:worker_threads";
import pg from "pg";

export function parseArgs(argv, defaults) {
  const o = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--") || i + 1 >= argv.length)
      throw new Error(`bad argument ${a}`);
    const k = a.slice(2);
    if (!(k in o)) throw new Error(`unknown option ${a}`);
    const v = argv[++i];
    o[k] = typeof defaults[k] === "number" ? Number(v) : v;
  }
  if (!o.uri) throw new Error("--uri is required");
  if (!/^[a-z_][a-z0-9_]*$/.test(o.schema))
    throw new Error(`bad schema name ${o.schema}`);
  return o;
}

export const DEFAULTS = {
  uri: "",
  schema: "",
  units: 30000,
  batch: 100,
  producers: 4,
  concurrency: 16,
  timeout: 180, // seconds: the run gives up (drained: false) after this
};

// Warnings and errors to stderr, nothing else: the default loggers write a
// line per job, which would measure the terminal.
export function quiet(scope, level, message) {
  if (level === "error" || level === "warning" || level === "warn")
    process.stderr.write(`[${scope}] ${level}: ${message}\n`);
}

export async function dropSchema(uri, schema) {
  const c = new pg.Client({ connectionString: uri });
  await c.connect();
  try {
    await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await c.end();
  }
}

// Starts the producer thread; resolves once it has connected and is ready
// to add (start() then begins the adds and the clock).
export function startProducers(peer, opts) {
  const w = new Worker(new URL("./produce.mjs", import.meta.url), {
    workerData: { peer, ...opts },
  });
  let onReady, onDone, onFail;
  const ready = new Promise((res, rej) => {
    onReady = res;
    onFail = rej;
  });
  const done = new Promise((res, rej) => {
    onDone = res;
    w.on("error", rej);
  });
  w.on("error", (e) => onFail(e));
  w.on("message", (m) => {
    if (m.type === "ready") onReady();
    else if (m.type === "done") onDone(m);
  });
  w.on("exit", (code) => {
    if (code !== 0) onFail(new Error(`producer thread exited ${code}`));
  });
  return {
    ready,
    done,
    start() {
      w.postMessage({ type: "start" });
    },
  };
}

// Polls `sql` (one row, one column: the number of open jobs) until 0;
// returns the monotonic time in ms it first read 0, or null on deadline.
export async function waitNoneOpen(uri, sql, params, deadlineMs) {
  const c = new pg.Client({ connectionString: uri });
  await c.connect();
  try {
    for (;;) {
      const r = await c.query(sql, params);
      const t = performance.now();
      if (Number(r.rows[0].n) === 0) return t;
      if (t > deadlineMs) return null;
      await new Promise((res) => setTimeout(res, 5));
    }
  } finally {
    await c.end();
  }
}

// Resolves when `counter()` reaches `n`, or on the deadline.
export function whenCount(counter, n, deadlineMs) {
  return new Promise((res) => {
    const tick = () => {
      if (counter() >= n || performance.now() > deadlineMs) res();
      else setTimeout(tick, 2);
    };
    tick();
  });
}

export function report(o) {
  process.stdout.write(JSON.stringify(o) + "\n");
}
