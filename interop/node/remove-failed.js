#!/usr/bin/env node
"use strict";
// remove-failed.js --redis URL --namespace NS --index N
//
// Reads the failed record at index N with queue.failed(N, N) and removes it
// with queue.removeFailed(record), which LREMs JSON.stringify(record): that
// only matches if the stored entry is byte-for-byte what node would write for
// the same object. Prints
//   {"event":"removeFailed","index":N,"removed":COUNT,"reencodedEqual":BOOL}
// plus "raw" and "reencoded" strings when they differ, so a caller can see
// why nothing was removed. Exits 1 if there is no record at N or it is not
// JSON (removed is then not attempted).

const { emit, die, cli, connectionOptions, connect, main, Queue } = require("./lib");

main(async () => {
  const o = cli({ index: { type: "string" } }, ["index"]);
  const index = Number(o.index);
  if (!Number.isInteger(index)) die(`--index must be an integer, got ${o.index}`, 2);

  const queue = new Queue({ connection: connectionOptions(o.redis, o.namespace) });
  await connect(queue);
  queue.on("error", (err) => die(`redis error: ${(err && err.message) || err}`));

  const raw = await queue.connection.redis.lindex(queue.connection.key("failed"), index);
  if (raw === null) die(`no failed record at index ${index}`);
  let records;
  try {
    records = await queue.failed(index, index);
  } catch (e) {
    die(`node-resque cannot parse failed record ${index}: ${e.message}: ${raw}`);
  }
  if (records.length !== 1) die(`queue.failed(${index}, ${index}) returned ${records.length} records`);
  const record = records[0];
  const reencoded = JSON.stringify(record);
  const removed = await queue.removeFailed(record);
  await queue.end();

  const out = { event: "removeFailed", index, removed, reencodedEqual: reencoded === raw };
  if (reencoded !== raw) {
    out.raw = raw;
    out.reencoded = reencoded;
  }
  emit(out);
  return 0;
});
