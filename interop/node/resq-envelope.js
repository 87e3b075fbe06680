"use strict";
// resq's signing and encryption envelope with node:crypto only: the worked
// example of docs/protocol.md, "Signing and encryption envelope". A Node
// producer can copy this file to enqueue jobs that resq workers verify and
// decrypt. No dependencies.

const crypto = require("node:crypto");

const EMPTY = Buffer.alloc(0);

// netstring frames one field: its length in bytes (decimal), ":", the
// bytes, ",". Strings are taken as UTF-8.
function netstring(value) {
  const b = Buffer.isBuffer(value) ? value : Buffer.from(value, "utf8");
  return Buffer.concat([Buffer.from(`${b.length}:`), b, Buffer.from(",")]);
}

// signingMessage is what a signature covers (version 1):
//   "resq-sig-v1\n" ns(class) ns(queue) ns(id) ns(enqueued_at) ns(args)
//   ns(enc.kid) ns(enc.nonce) ns(enc.ct)
// meta.enqueuedAt is the exact text of the payload's enqueued_at value,
// argsText the exact text of its args value; the enc fields are empty when
// the args are not encrypted, else the key id and the raw nonce and
// ciphertext bytes.
function signingMessage(meta, argsText, enc) {
  return Buffer.concat([
    Buffer.from("resq-sig-v1\n"),
    netstring(meta.class),
    netstring(meta.queue),
    netstring(meta.id),
    netstring(meta.enqueuedAt),
    netstring(argsText),
    netstring(enc ? enc.kid : ""),
    netstring(enc ? enc.nonce : EMPTY),
    netstring(enc ? enc.ct : EMPTY),
  ]);
}

// associatedData binds ciphertext to its job: "resq-enc-v1\n" ns(class)
// ns(queue) ns(id).
function associatedData(meta) {
  return Buffer.concat([Buffer.from("resq-enc-v1\n"), netstring(meta.class), netstring(meta.queue), netstring(meta.id)]);
}

// primaries returns the primary signing and encryption keys of a keyring
// (the JSON that `resq keys new` writes), either of which may be missing.
function primaries(keyring) {
  const find = (set) => (set && set.primary ? (set.keys || []).find((k) => k.id === set.primary) : undefined);
  return { signing: find(keyring.signing), encryption: find(keyring.encryption) };
}

// sign signs msg with a keyring entry: HMAC-SHA256 over the shared secret,
// or Ed25519 with the private key (64 bytes in the keyring: the 32-byte
// seed, then the public key).
function sign(key, msg) {
  switch (key.type) {
    case "hmac-sha256":
      return crypto.createHmac("sha256", Buffer.from(key.secret, "base64")).update(msg).digest();
    case "ed25519": {
      if (!key.private) throw new Error(`ed25519 key ${key.id} has no private part: this keyring cannot sign`);
      const priv = Buffer.from(key.private, "base64");
      const jwk = { kty: "OKP", crv: "Ed25519", d: priv.subarray(0, 32).toString("base64url"), x: priv.subarray(32).toString("base64url") };
      return crypto.sign(null, msg, crypto.createPrivateKey({ key: jwk, format: "jwk" }));
    }
    default:
      throw new Error(`signing key type ${key.type} is not supported`);
  }
}

// encrypt seals plaintext with AES-256-GCM under a 12-byte random nonce; the
// ciphertext is followed by the 16-byte tag, as Go's cipher.AEAD.Seal writes.
function encrypt(key, meta, plaintext, nonce = crypto.randomBytes(12)) {
  const c = crypto.createCipheriv("aes-256-gcm", Buffer.from(key.secret, "base64"), nonce);
  c.setAAD(associatedData(meta));
  const ct = Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
  return { kid: key.id, nonce, ct };
}

// sealPayload returns the payload text of one job, signed with the
// keyring's signing primary and, with encrypt set, with its args encrypted
// under the encryption primary. The payload is written by hand so that the
// args and enqueued_at bytes in it are exactly the ones signed.
function sealPayload(keyring, { queue, klass, args, id, enqueuedAt, encrypt: doEncrypt = false, nonce }) {
  const { signing, encryption } = primaries(keyring);
  if (!signing) throw new Error("the keyring has no signing primary");
  id = id || crypto.randomBytes(16).toString("hex");
  enqueuedAt = enqueuedAt || String(Date.now() / 1000);
  const meta = { class: klass, queue, id, enqueuedAt };
  let argsText = JSON.stringify(args);
  let enc = null;
  if (doEncrypt) {
    if (!encryption) throw new Error("the keyring has no encryption primary");
    enc = encrypt(encryption, meta, Buffer.from(argsText, "utf8"), nonce);
    argsText = "[]";
  }
  let out = `{"class":${JSON.stringify(klass)},"args":${argsText},"id":${JSON.stringify(id)},"enqueued_at":${enqueuedAt}`;
  if (enc) {
    out += `,"enc":{"kid":${JSON.stringify(enc.kid)},"nonce":"${enc.nonce.toString("base64")}","ct":"${enc.ct.toString("base64")}"}`;
  }
  const sig = sign(signing, signingMessage(meta, argsText, enc));
  out += `,"kid":${JSON.stringify(signing.id)},"sig":"${sig.toString("base64")}"}`;
  return { payload: out, id, signedWith: signing.id, encryptedWith: enc ? enc.kid : null };
}

module.exports = { netstring, signingMessage, associatedData, primaries, sign, encrypt, sealPayload };
