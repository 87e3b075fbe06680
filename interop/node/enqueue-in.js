#!/usr/bin/env node
"use strict";
// enqueue-in.js --redis URL --namespace NS --queue Q --class C --args '<JSON array>' --in-ms MS
//
// Delays C(args...) on Q by MS milliseconds with node-resque's
// Queue#enqueueIn (which rounds the due time to the nearest second), then
// prints {"event":"delayed","timestamp":<due second>,...}.

const { emit, die, cli, connectionOptions, connect, main, Queue } = require("./lib");

main(async () => {
  const o = cli(
    {
      queue: { type: "string" },
      class: { type: "string" },
      args: { type: "string", default: "[]" },
      "in-ms": { type: "string" },
    },
    ["queue", "class", "in-ms"],
  );
  let args;
  try {
    args = JSON.parse(o.args);
  } catch (e) {
    die(`--args is not valid JSON: ${e.message}`, 2);
  }
  if (!Array.isArray(args)) die("--args must be a JSON array", 2);
  const ms = Number(o["in-ms"]);
  if (!Number.isFinite(ms)) die(`--in-ms must be a number, got ${o["in-ms"]}`, 2);
  const queue = new Queue({ connection: connectionOptions(o.redis, o.namespace) });
  await connect(queue);
  queue.on("error", (err) => die(`redis error: ${(err && err.message) || err}`));
  const at = new Date().getTime() + ms;
  await queue.enqueueAt(at, o.queue, o.class, args);
  await queue.end();
  emit({ event: "delayed", queue: o.queue, class: o.class, args, timestamp: Math.round(at / 1000) });
  return 0;
});
