#!/usr/bin/env node
"use strict";
// inspect.js --redis URL --namespace NS
//
// Prints one JSON object with node-resque's view of the namespace:
//   queues        queue.queues() (sorted)
//   length        {queue: queue.length(queue)} for each of those queues
//   failedCount   queue.failedCount()
//   failed        queue.failed(0, -1); if node-resque cannot parse the list,
//                 each entry is parsed on its own and unparseable ones are
//                 shown as {"_unparseable": raw}
//   workers       queue.workers()
//   allWorkingOn  queue.allWorkingOn()
//   stats         queue.stats()
//   locks         queue.locks()
//   errors        {field: message} for every call that threw (the field is
//                 then null); absent when everything worked
//
// Nothing written by another implementation makes it crash: every call is
// guarded. Note that node-resque's connect() itself writes
// NS:connection_test_key = "ok".

const { emit, cli, connectionOptions, connect, main, Queue } = require("./lib");

main(async () => {
  const o = cli({});
  const queue = new Queue({ connection: connectionOptions(o.redis, o.namespace) });
  await connect(queue);
  const redisErrors = [];
  queue.on("error", (err) => redisErrors.push((err && err.message) || String(err)));

  const out = {};
  const errors = {};
  const guard = async (field, fn) => {
    try {
      out[field] = await fn();
    } catch (e) {
      out[field] = null;
      errors[field] = (e && e.message) || String(e);
    }
  };

  await guard("queues", async () => (await queue.queues()).sort());
  await guard("length", async () => {
    const lengths = {};
    for (const q of out.queues || []) lengths[q] = await queue.length(q);
    return lengths;
  });
  await guard("failedCount", () => queue.failedCount());
  await guard("failed", async () => {
    try {
      return await queue.failed(0, -1);
    } catch (e) {
      errors.failedParse = (e && e.message) || String(e);
      const raw = await queue.connection.redis.lrange(queue.connection.key("failed"), 0, -1);
      return raw.map((r) => {
        try {
          return JSON.parse(r);
        } catch {
          return { _unparseable: r };
        }
      });
    }
  });
  await guard("workers", () => queue.workers());
  await guard("allWorkingOn", () => queue.allWorkingOn());
  await guard("stats", () => queue.stats());
  await guard("locks", () => queue.locks());
  if (redisErrors.length) errors.redis = redisErrors.join("; ");
  if (Object.keys(errors).length) out.errors = errors;

  await queue.end();
  emit(out);
  return 0;
});
