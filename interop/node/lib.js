"use strict";
// Shared helpers for the node-resque interop CLIs.
//
// Every CLI takes --redis URL (required) and --namespace NS (default
// "resque"), prints JSON lines to stdout and, on error, a message to stderr
// and a non-zero exit code.

const { parseArgs } = require("node:util");
const { Queue, Worker } = require("node-resque");

// emit prints one JSON line on stdout.
function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

// die prints a message on stderr and exits with status 1 (or 2 for usage).
function die(msg, code = 1) {
  process.stderr.write(`${process.argv[1].split("/").pop()}: ${msg}\n`);
  process.exit(code);
}

// cli parses argv with the common --redis/--namespace flags plus `extra`
// (node:util parseArgs option specs). Unknown flags are usage errors.
function cli(extra, required = []) {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        redis: { type: "string" },
        namespace: { type: "string", default: "resque" },
        help: { type: "boolean", short: "h" },
        ...extra,
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    die(e.message, 2);
  }
  if (values.help) {
    const flags = ["--redis URL", "--namespace NS"].concat(
      Object.keys(extra).map((k) => `--${k}${extra[k].type === "string" ? " V" : ""}`),
    );
    process.stdout.write(`usage: ${process.argv[1].split("/").pop()} ${flags.join(" ")}\n`);
    process.exit(0);
  }
  for (const name of ["redis", ...required]) {
    if (values[name] === undefined || values[name] === "") die(`--${name} is required`, 2);
  }
  return values;
}

// connectionOptions turns redis://[user:pass@]host:port/db into node-resque
// connection options. ioredis is told not to retry forever so that a
// missing server becomes an error instead of a hang.
function connectionOptions(url, namespace) {
  let u;
  try {
    u = new URL(url);
  } catch (e) {
    die(`bad --redis URL ${JSON.stringify(url)}: ${e.message}`, 2);
  }
  if (u.protocol !== "redis:") die(`--redis must be a redis:// URL, got ${url}`, 2);
  const db = u.pathname && u.pathname !== "/" ? Number(u.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0) die(`bad database in --redis URL ${url}`, 2);
  const options = {
    connectTimeout: 5000,
    maxRetriesPerRequest: 2,
    retryStrategy: (times) => (times > 3 ? null : 100),
  };
  if (u.username) options.username = decodeURIComponent(u.username);
  if (u.password) options.password = decodeURIComponent(u.password);
  return {
    host: u.hostname || "127.0.0.1",
    port: u.port ? Number(u.port) : 6379,
    database: db,
    namespace,
    options,
  };
}

// connect waits for an object with connect() and a `connection` (Queue or
// Worker) and fails if node-resque could not reach Redis. node-resque's
// Connection swallows connection errors into "error" events, so those are
// recorded here and checked afterwards.
async function connect(obj) {
  const errors = [];
  const onError = (err) => errors.push(err);
  obj.on("error", onError);
  const opts = obj.options.connection || {};
  const where = `${opts.host}:${opts.port}/${opts.database}`;
  try {
    await obj.connect();
  } catch (e) {
    errors.push(e);
  }
  obj.off("error", onError);
  const conn = obj.connection || (obj.queueObject && obj.queueObject.connection);
  if (errors.length || !conn || !conn.connected) {
    const why = errors.length ? [...new Set(errors.map((e) => (e && e.message) || String(e)))].join("; ") : "not connected";
    const err = new Error(`cannot connect to redis at ${where}: ${why}`);
    err.brief = true;
    if (conn && conn.redis) conn.redis.disconnect();
    throw err;
  }
}

// main runs fn and turns a rejected promise into a clean error exit.
function main(fn) {
  fn().then(
    (code) => process.exit(typeof code === "number" ? code : 0),
    (err) => die(err && err.brief ? err.message : (err && err.stack) || String(err)),
  );
}

module.exports = { emit, die, cli, connectionOptions, connect, main, Queue, Worker };
