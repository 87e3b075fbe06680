// Package wire is the only code in resq that knows Resque's Redis data model:
// key names, the job payload JSON, the "working on" record, failure records,
// time formats and the Lua scripts. Every other package asks it.
//
// The formats follow shared/spec/resque-protocol.md (Ruby Resque 3.0). resq's
// own additions are extra payload fields ("id", "enqueued_at") that Ruby and
// node-resque ignore, and keys under "<ns>:resq:".
package wire
