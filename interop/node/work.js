#!/usr/bin/env node
"use strict";
// work.js --redis URL --namespace NS --queues a,b --jobs Name1,Name2 --expect N
//         [--timeout-ms T] [--poll-ms P] [--name WORKER_NAME]
//
// Runs one node-resque Worker on the queues (in priority order) whose jobs
// map holds the given names. Each perform prints
//   {"event":"perform","class":C,"args":[...],"queue":Q}
// and returns; a job whose name starts with "Fail" throws
// new Error("boom from node") after printing. Every finished job also prints
// {"event":"success"|"failure",...}. After N finished jobs (successes plus
// failures, including jobs of unknown classes) the worker is ended with
// worker.end() and {"event":"done","count":N} is printed; exit 0. If N jobs
// do not finish within T ms (default 20000), prints done with the count so
// far and exits 1.

const { emit, die, cli, connectionOptions, connect, main, Worker } = require("./lib");

function list(s) {
  return s
    .split(",")
    .map((x) => x.trim())
    .filter((x) => x !== "");
}

main(async () => {
  const o = cli(
    {
      queues: { type: "string" },
      jobs: { type: "string", default: "" },
      expect: { type: "string" },
      "timeout-ms": { type: "string", default: "20000" },
      "poll-ms": { type: "string", default: "50" },
      name: { type: "string" },
    },
    ["queues", "expect"],
  );
  const expect = Number(o.expect);
  const timeoutMs = Number(o["timeout-ms"]);
  const pollMs = Number(o["poll-ms"]);
  if (!Number.isInteger(expect) || expect < 0) die(`--expect must be a non-negative integer, got ${o.expect}`, 2);
  if (!(timeoutMs > 0)) die(`--timeout-ms must be positive, got ${o["timeout-ms"]}`, 2);
  if (!(pollMs > 0)) die(`--poll-ms must be positive, got ${o["poll-ms"]}`, 2);
  const queues = list(o.queues);
  if (queues.length === 0) die("--queues is empty", 2);

  let worker;
  const jobs = {};
  for (const name of list(o.jobs)) {
    jobs[name] = {
      perform: async (...args) => {
        emit({ event: "perform", class: name, args, queue: worker.queue });
        if (name.startsWith("Fail")) throw new Error("boom from node");
        return null;
      },
    };
  }

  const workerOptions = { connection: connectionOptions(o.redis, o.namespace), queues, timeout: pollMs };
  if (o.name) workerOptions.name = o.name;
  worker = new Worker(workerOptions, jobs);
  await connect(worker);

  let count = 0;
  let ending = null;
  let finish;
  const finished = new Promise((resolve) => (finish = resolve));
  const endWorker = (ok) => {
    if (ending) return;
    // end() sets running=false synchronously, so no further job is taken.
    ending = worker.end().then(() => finish(ok));
  };
  const jobDone = () => {
    count++;
    if (count >= expect) endWorker(true);
  };

  worker.on("success", (queue, job) => {
    emit({ event: "success", class: job && job.class, queue });
    jobDone();
  });
  worker.on("failure", (queue, job, err) => {
    emit({ event: "failure", class: job && job.class, queue, error: (err && err.message) || String(err) });
    jobDone();
  });
  worker.on("error", (err, queue) => {
    emit({ event: "error", queue: queue === undefined ? null : queue, error: (err && err.message) || String(err) });
  });

  const timer = setTimeout(() => endWorker(false), timeoutMs);
  if (expect === 0) {
    endWorker(true);
  } else {
    await worker.start();
  }
  const ok = await finished;
  clearTimeout(timer);
  emit({ event: "done", count });
  if (!ok) {
    process.stderr.write(`work.js: timeout after ${timeoutMs} ms: ${count} of ${expect} jobs done\n`);
    return 1;
  }
  return 0;
});
