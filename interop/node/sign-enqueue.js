#!/usr/bin/env node
"use strict";
// sign-enqueue.js --redis URL --namespace NS --keyring FILE --queue Q --class C
//                 --args '<JSON array>' [--encrypt]
//
// Builds a resq payload signed with the keyring's signing primary
// (HMAC-SHA256 or Ed25519) and, with --encrypt, with its args encrypted
// under the encryption primary (AES-256-GCM), using node:crypto only (see
// resq-envelope.js), and pushes it as Resque does: SADD queues + RPUSH
// queue:Q in one MULTI, through node-resque's connection. Prints
// {"event":"enqueued","id":…,"queue":…,"class":…,"kid":…,"enc_kid":…|null,"bytes":N}
// (never the args).

const fs = require("node:fs");
const { emit, die, cli, connectionOptions, connect, main, Queue } = require("./lib");
const { sealPayload } = require("./resq-envelope");

main(async () => {
  const o = cli(
    {
      keyring: { type: "string" },
      queue: { type: "string" },
      class: { type: "string" },
      args: { type: "string", default: "[]" },
      encrypt: { type: "boolean", default: false },
    },
    ["keyring", "queue", "class"],
  );
  let args;
  try {
    args = JSON.parse(o.args);
  } catch (e) {
    die(`--args is not valid JSON: ${e.message}`, 2);
  }
  if (!Array.isArray(args)) die("--args must be a JSON array", 2);
  let keyring;
  try {
    keyring = JSON.parse(fs.readFileSync(o.keyring, "utf8"));
  } catch (e) {
    die(`--keyring ${o.keyring}: ${e.message}`, 2);
  }
  let sealed;
  try {
    sealed = sealPayload(keyring, { queue: o.queue, klass: o.class, args, encrypt: o.encrypt });
  } catch (e) {
    die(`--keyring ${o.keyring}: ${e.message}`, 2);
  }

  const queue = new Queue({ connection: connectionOptions(o.redis, o.namespace) });
  await connect(queue);
  queue.on("error", (err) => die(`redis error: ${(err && err.message) || err}`));
  const c = queue.connection;
  const res = await c.redis.multi().sadd(c.key("queues"), o.queue).rpush(c.key("queue", o.queue), sealed.payload).exec();
  for (const [err] of res || []) if (err) throw err;
  await queue.end();
  emit({
    event: "enqueued",
    id: sealed.id,
    queue: o.queue,
    class: o.class,
    kid: sealed.signedWith,
    enc_kid: sealed.encryptedWith,
    bytes: Buffer.byteLength(sealed.payload),
  });
  return 0;
});
