#!/usr/bin/env node
"use strict";
// scheduler.js --redis URL --namespace NS --expect N [--timeout-ms T] [--poll-ms P]
//
// Runs node-resque's Scheduler (its own leader lock) until it has moved N
// delayed jobs to their queues, printing
//   {"event":"transferred","timestamp":TS,"class":C,"queue":Q,"args":[...]}
// for each, then {"event":"done","count":N}; exit 0. If N jobs are not moved
// within T ms (default 20000), prints done with the count so far and exits 1.

const { Scheduler } = require("node-resque");
const { emit, die, cli, connectionOptions, connect, main } = require("./lib");

main(async () => {
  const o = cli(
    {
      expect: { type: "string" },
      "timeout-ms": { type: "string", default: "20000" },
      "poll-ms": { type: "string", default: "100" },
    },
    ["expect"],
  );
  const expect = Number(o.expect);
  const timeoutMs = Number(o["timeout-ms"]);
  const pollMs = Number(o["poll-ms"]);
  if (!Number.isInteger(expect) || expect < 0) die(`--expect must be a non-negative integer, got ${o.expect}`, 2);
  if (!(timeoutMs > 0) || !(pollMs > 0)) die("--timeout-ms and --poll-ms must be positive", 2);
  const scheduler = new Scheduler({ connection: connectionOptions(o.redis, o.namespace), timeout: pollMs });
  await connect(scheduler);
  let count = 0;
  let finish;
  const finished = new Promise((resolve) => (finish = resolve));
  scheduler.on("error", (err) => die(`scheduler error: ${(err && err.message) || err}`));
  scheduler.on("transferredJob", (timestamp, job) => {
    emit({ event: "transferred", timestamp, class: job.class, queue: job.queue, args: job.args });
    count++;
    if (count >= expect) finish(0);
  });
  const timer = setTimeout(() => finish(1), timeoutMs);
  if (expect === 0) finish(0);
  await scheduler.start();
  const code = await finished;
  clearTimeout(timer);
  await scheduler.end();
  emit({ event: "done", count });
  return code;
});
