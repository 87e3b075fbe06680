#!/usr/bin/env node
"use strict";
// enqueue.js --redis URL --namespace NS --queue Q --class C --args '<JSON array>' [--count N]
//
// Enqueues C(args...) on Q with node-resque's Queue#enqueue, N times
// (default 1), then prints {"event":"enqueued",...}.

const { emit, die, cli, connectionOptions, connect, main, Queue } = require("./lib");

main(async () => {
  const o = cli(
    {
      queue: { type: "string" },
      class: { type: "string" },
      args: { type: "string", default: "[]" },
      count: { type: "string", default: "1" },
    },
    ["queue", "class"],
  );
  let args;
  try {
    args = JSON.parse(o.args);
  } catch (e) {
    die(`--args is not valid JSON: ${e.message}`, 2);
  }
  if (!Array.isArray(args)) die("--args must be a JSON array", 2);
  const count = Number(o.count);
  if (!Number.isInteger(count) || count < 0) die(`--count must be a non-negative integer, got ${o.count}`, 2);

  const queue = new Queue({ connection: connectionOptions(o.redis, o.namespace) });
  await connect(queue);
  queue.on("error", (err) => die(`redis error: ${(err && err.message) || err}`));
  for (let i = 0; i < count; i++) {
    await queue.enqueue(o.queue, o.class, args);
  }
  await queue.end();
  emit({ event: "enqueued", queue: o.queue, class: o.class, args, count });
  return 0;
});
