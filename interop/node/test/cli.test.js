"use strict";
// Self-test of the interop CLIs against a private redis-server on a free
// loopback port (never 6379). Run with `npm test` (node --test).

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { spawn, execFileSync } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");

const dir = path.join(__dirname, "..");
let server;
let tmp;
let port;

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const p = srv.address().port;
      srv.close(() => resolve(p));
    });
  });
}

// redis runs one command with redis-cli against the private server.
function redis(...args) {
  return execFileSync("redis-cli", ["-p", String(port), "--raw", ...args], { encoding: "utf8" }).trimEnd();
}

// ping is redis("PING") without redis-cli's complaints while it starts.
function ping() {
  return execFileSync("redis-cli", ["-p", String(port), "PING"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
}

// run runs a CLI and resolves {code, lines, stderr}.
function run(script, args, url = `redis://127.0.0.1:${port}/0`) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(dir, script), "--redis", url, ...args], { cwd: dir });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("close", (code) => {
      const lines = out
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l));
      resolve({ code, lines, stderr: err });
    });
  });
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "resq-node-"));
  for (let attempt = 0; attempt < 5; attempt++) {
    port = await freePort();
    if (port === 6379) continue;
    server = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmp], {
      stdio: "ignore",
    });
    const deadline = Date.now() + 10000;
    let up = false;
    while (Date.now() < deadline && server.exitCode === null) {
      try {
        if (ping() === "PONG") {
          up = true;
          break;
        }
      } catch {
        /* not yet */
      }
      await new Promise((r) => setTimeout(r, 30));
    }
    if (up) return;
    server.kill("SIGKILL");
  }
  throw new Error("could not start redis-server");
});

after(() => {
  if (server) server.kill("SIGKILL");
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test("enqueue, work and inspect", async () => {
  const ns = "t1";
  let r = await run("enqueue.js", ["--namespace", ns, "--queue", "high", "--class", "Add", "--args", '[1,{"k":"v"}]', "--count", "2"]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.lines, [{ event: "enqueued", queue: "high", class: "Add", args: [1, { k: "v" }], count: 2 }]);
  r = await run("enqueue.js", ["--namespace", ns, "--queue", "low", "--class", "FailHard", "--args", '["x"]']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(redis("LINDEX", `${ns}:queue:low`, "0"), '{"class":"FailHard","queue":"low","args":["x"]}');

  r = await run("inspect.js", ["--namespace", ns]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.lines[0].queues, ["high", "low"]);
  assert.deepEqual(r.lines[0].length, { high: 2, low: 1 });

  r = await run("work.js", ["--namespace", ns, "--queues", "high,low", "--jobs", "Add,FailHard", "--expect", "3", "--timeout-ms", "10000"]);
  assert.equal(r.code, 0, r.stderr);
  const performs = r.lines.filter((l) => l.event === "perform");
  assert.deepEqual(performs, [
    { event: "perform", class: "Add", args: [1, { k: "v" }], queue: "high" },
    { event: "perform", class: "Add", args: [1, { k: "v" }], queue: "high" },
    { event: "perform", class: "FailHard", args: ["x"], queue: "low" },
  ]);
  assert.deepEqual(r.lines[r.lines.length - 1], { event: "done", count: 3 });
  assert.equal(redis("SCARD", `${ns}:workers`), "0", "worker did not untrack itself");

  r = await run("inspect.js", ["--namespace", ns]);
  const view = r.lines[0];
  assert.equal(view.failedCount, 1);
  assert.equal(view.failed[0].error, "boom from node");
  assert.deepEqual(view.failed[0].payload, { class: "FailHard", queue: "low", args: ["x"] });
  assert.deepEqual(view.stats, { processed: "2", failed: "1" });
  assert.equal(view.errors, undefined);

  r = await run("remove-failed.js", ["--namespace", ns, "--index", "0"]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.lines, [{ event: "removeFailed", index: 0, removed: 1, reencodedEqual: true }]);
  assert.equal(redis("LLEN", `${ns}:failed`), "0");
});

test("foreign entries do not crash inspect; remove-failed reports byte mismatch", async () => {
  const ns = "t2";
  redis("RPUSH", `${ns}:failed`, '{"failed_at":"2026/11/27 06:00:00 UTC","payload":{"class":"X","args":[]},"exception":"E","error":"e","backtrace":[],"worker":"h:1:q","queue":"q"}');
  redis("RPUSH", `${ns}:failed`, "not json");
  redis("RPUSH", `${ns}:failed`, '{"error":"\\u003c"}');
  redis("SADD", `${ns}:workers`, "h:1:q1,q2");
  redis("SET", `${ns}:worker:h:1:q1,q2`, '{"queue":"q1","run_at":"2026-11-27T06:00:00Z","payload":{"class":"X","args":[]}}');
  let r = await run("inspect.js", ["--namespace", ns]);
  assert.equal(r.code, 0, r.stderr);
  const view = r.lines[0];
  assert.equal(view.failedCount, 3);
  assert.deepEqual(view.failed[1], { _unparseable: "not json" });
  assert.deepEqual(view.workers, { "h:1": "q1,q2" });
  assert.ok(view.errors.failedParse);

  r = await run("remove-failed.js", ["--namespace", ns, "--index", "0"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.lines[0].removed, 1);
  // the list is now ["not json", '{"error":"\u003c"}']
  r = await run("remove-failed.js", ["--namespace", ns, "--index", "0"]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /cannot parse/);
  r = await run("remove-failed.js", ["--namespace", ns, "--index", "1"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.lines[0].removed, 0);
  assert.equal(r.lines[0].reencodedEqual, false);
  assert.equal(r.lines[0].reencoded, '{"error":"<"}');
});

test("database from the URL and errors", async () => {
  let r = await run("enqueue.js", ["--namespace", "t3", "--queue", "q", "--class", "C"], `redis://127.0.0.1:${port}/3`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(redis("-n", "3", "LLEN", "t3:queue:q"), "1");
  assert.equal(redis("LLEN", "t3:queue:q"), "0");

  r = await run("work.js", ["--namespace", "t3", "--queues", "empty", "--jobs", "C", "--expect", "1", "--timeout-ms", "300"]);
  assert.equal(r.code, 1);
  assert.deepEqual(r.lines[r.lines.length - 1], { event: "done", count: 0 });
  assert.match(r.stderr, /timeout/);

  r = await run("enqueue.js", ["--queue", "q", "--class", "C"], "redis://127.0.0.1:1/0");
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /cannot connect to redis/);

  r = await run("enqueue.js", ["--queue", "q", "--class", "C", "--args", "{}"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /JSON array/);
});

// The test vector of docs/protocol.md ("Signing and encryption envelope"),
// also checked by internal/envelope/vector_test.go on the Go side.
test("resq-envelope.js matches the protocol's test vector", () => {
  const crypto = require("node:crypto");
  const env = require("../resq-envelope");
  const seq = (from, n) => Buffer.from(Array.from({ length: n }, (_, i) => from + i));
  const edPub = crypto
    .createPublicKey(crypto.createPrivateKey({ key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seq(0x20, 32)]), format: "der", type: "pkcs8" }))
    .export({ format: "jwk" }).x;
  const hmacKey = { id: "s1", type: "hmac-sha256", secret: seq(0x00, 32).toString("base64") };
  const edKey = { id: "s1", type: "ed25519", private: Buffer.concat([seq(0x20, 32), Buffer.from(edPub, "base64url")]).toString("base64") };
  const encKey = { id: "e1", type: "aes-256-gcm", secret: seq(0x40, 32).toString("base64") };
  const meta = { class: "SendWelcome", queue: "mail", id: "0123456789abcdef0123456789abcdef", enqueuedAt: "1705314225.123" };
  const args = '[{"user_id":42}]';

  assert.equal(env.associatedData(meta).toString(), "resq-enc-v1\n11:SendWelcome,4:mail,32:0123456789abcdef0123456789abcdef,");
  const plainMsg = env.signingMessage(meta, args, null);
  assert.equal(plainMsg.toString(), 'resq-sig-v1\n11:SendWelcome,4:mail,32:0123456789abcdef0123456789abcdef,14:1705314225.123,16:[{"user_id":42}],0:,0:,0:,');
  const enc = env.encrypt(encKey, meta, Buffer.from(args), seq(0x60, 12));
  assert.equal(enc.ct.toString("base64"), "91MrcHTx4vlg5VsMMbQhVo96rROXVSBvaVSpFdTmBVI=");
  const encMsg = env.signingMessage(meta, "[]", enc);
  assert.equal(env.sign(hmacKey, plainMsg).toString("base64"), "qcRg504Z9bUl5cHLspFShJaZQd+AxNQxuc4GP4cL+3Q=");
  assert.equal(env.sign(edKey, plainMsg).toString("base64"), "+CH2wQMyNHKLEzI3gdIsn2DhLfT6eHENQt9B+vwBWEx/6QLdm98sB04JluHNzdh/8acF3ZXjbhMiW/7s17F6CQ==");
  assert.equal(env.sign(hmacKey, encMsg).toString("base64"), "2SYCxB7aQtxRFm0xtEzg/VyDGIeBv6o7lkYnZSDfe2s=");
  assert.equal(env.sign(edKey, encMsg).toString("base64"), "A7bsHgppa5hBi3mj4AhzN2Aagt40wmvfOYgg3KcOrcgeMyETRaIPq3BnggdVnkpv9DEjzTOv6RQYRUh8XTuODw==");

  // sealPayload writes the fields in resq's order, args and enqueued_at as signed.
  const keyring = { version: 1, signing: { primary: "s1", keys: [hmacKey] }, encryption: { primary: "e1", keys: [encKey] } };
  const sealed = env.sealPayload(keyring, { queue: "mail", klass: "SendWelcome", args: [{ user_id: 42 }], id: meta.id, enqueuedAt: meta.enqueuedAt, encrypt: true, nonce: seq(0x60, 12) });
  assert.equal(
    sealed.payload,
    '{"class":"SendWelcome","args":[],"id":"0123456789abcdef0123456789abcdef","enqueued_at":1705314225.123,' +
      '"enc":{"kid":"e1","nonce":"YGFiY2RlZmdoaWpr","ct":"91MrcHTx4vlg5VsMMbQhVo96rROXVSBvaVSpFdTmBVI="},' +
      '"kid":"s1","sig":"2SYCxB7aQtxRFm0xtEzg/VyDGIeBv6o7lkYnZSDfe2s="}',
  );
});
