// Package wire is the only code in resq that knows Resque's Redis data model:
// key names, the commands and Lua scripts (with their plain-command twins,
// plain.go), the job payload JSON, the "working on" record, failure records
// and time formats. Other packages' code reaches Redis through a Store and
// these types: named reads and writes (QueueRange, FailedRange,
// WorkerStates, FetchWith, AckAndFetch…), never a raw key or command (tests
// still build fixtures with raw commands); the root package only opens the
// go-redis client and hands it to NewStore.
//
// A payload's signing and encryption fields ("enc", "kid", "sig") are read
// into and written from envelope.Envelope; internal/envelope signs, verifies,
// encrypts and decrypts, and knows no payload field name.
//
// The formats are Ruby Resque 3.0's (docs/protocol.md). resq's own additions
// are extra payload fields ("id", "enqueued_at" and the envelope's) that Ruby
// and node-resque ignore, and keys under "<ns>:resq:".
package wire
