package resq

import (
	"context"
	"errors"
	"fmt"

	"github.com/resq-go/resq/internal/envelope"
	"github.com/resq-go/resq/internal/wire"
)

// KeyInfo describes one key of a keyring, never its secret.
type KeyInfo struct {
	ID string `json:"id"`
	// Purpose is "signing" or "encryption".
	Purpose string `json:"purpose"`
	// Type is KeyHMAC, KeyEd25519 or "aes-256-gcm".
	Type    string `json:"type"`
	Primary bool   `json:"primary"`
	// PublicOnly is set for an Ed25519 key without its private part (a
	// verify-only keyring): it verifies, it cannot sign.
	PublicOnly bool   `json:"public_only,omitempty"`
	Created    string `json:"created,omitempty"`
}

// Keys lists the keyring's keys, signing keys first, in file order.
func (k *Keyring) Keys() []KeyInfo {
	if k == nil {
		return nil
	}
	f := k.k.File()
	var out []KeyInfo
	for _, key := range f.Signing.Keys {
		out = append(out, KeyInfo{ID: key.ID, Purpose: "signing", Type: key.Type, Primary: key.ID == f.Signing.Primary,
			PublicOnly: key.Type == KeyEd25519 && key.Private == "", Created: key.Created})
	}
	for _, key := range f.Encryption.Keys {
		out = append(out, KeyInfo{ID: key.ID, Purpose: "encryption", Type: key.Type, Primary: key.ID == f.Encryption.Primary, Created: key.Created})
	}
	return out
}

// ReencryptParams configures Admin.Reencrypt.
type ReencryptParams struct {
	// Keyring is the producers' keyring after a rotation (with the signing
	// private key: signed jobs are signed again). Required.
	Keyring *Keyring
	// Queues limits the run to the jobs of these queues and to failure
	// records of these queues. Empty: every queue in the queues set and the
	// whole failed list.
	Queues []string
	// ProgressFunc, if set, is called after each queued job or failure
	// record of the first pass, with the number done and the total at the
	// start.
	ProgressFunc func(done, total int)
}

// ReencryptResult counts what Reencrypt did. A job or record counts once
// in Scanned and may count both as re-encrypted and as re-signed.
type ReencryptResult struct {
	// Scanned is the number of queued jobs and failure records read (once
	// each, though later passes read the lists again).
	Scanned int `json:"scanned"`
	// Reencrypted counts encrypted args moved to the encryption primary.
	Reencrypted int `json:"reencrypted"`
	// Resigned counts signatures made again with the signing primary.
	Resigned int `json:"resigned"`
	// Skipped counts payloads under an old key that could not be opened:
	// a signature that does not verify (forged, altered or moved jobs), a
	// key the keyring does not hold, ciphertext that does not decrypt.
	// They are left as they are; a worker refuses them too.
	Skipped int `json:"skipped"`
	// Gone counts jobs a worker took (or someone removed) between being
	// read and being rewritten; they were run or removed as they were.
	Gone int `json:"gone"`
	// InFlight counts running jobs (and jobs a worker is picking up) under
	// old keys. Their payloads cannot be rewritten; if one is requeued (a
	// worker stopped) or fails, run Reencrypt again before retiring the key.
	InFlight int `json:"in_flight"`
	// Remaining counts, for each key id other than the primaries, the
	// queued jobs, failure records and running jobs that still use it when
	// the run ends. A key absent from it can be retired.
	Remaining map[string]int `json:"remaining"`
}

// Reencrypt moves queued jobs and failure records onto the primary keys of
// p.Keyring after a rotation, so that old keys can be retired: encrypted
// args under another key are encrypted again under the encryption primary,
// and signatures by another key, or over ciphertext that changed, are made
// again with the signing primary.
//
// Each job is rewritten atomically with a compare-and-set on its exact
// bytes, so a job a worker takes meanwhile is never duplicated or changed
// under it. Only the envelope fields change; class, args, id, enqueued_at
// and other producers' fields keep their bytes. Nothing is ever signed that
// was not signed and verified before: an unsigned job stays unsigned, a
// forged or moved one is skipped, never laundered. The signature and
// associated data bind a job to its queue (for a failure record, the
// record's queue). Because workers pop concurrently, a job can shift past
// the reader; passes repeat (at most five) until one finds nothing to
// rewrite, and that last pass counts what still uses old keys.
func (a *Admin) Reencrypt(ctx context.Context, p ReencryptParams) (ReencryptResult, error) {
	k := p.Keyring
	res := ReencryptResult{Remaining: map[string]int{}}
	switch {
	case k == nil || k.k == nil:
		return res, errors.New("reencrypt: no keyring given")
	case k.CanVerify() && !k.CanSign():
		return res, errors.New("reencrypt: this keyring verifies but cannot sign (a verify-only keyring?); signed jobs must be signed again, so use the producers' keyring")
	case !k.CanEncrypt() && !k.CanSign():
		return res, errors.New("reencrypt: the keyring has neither an encryption nor a signing primary")
	}
	scope, err := a.keyScope(ctx, p.Queues)
	if err != nil {
		return res, err
	}
	total, err := scope.size(ctx, a.store)
	if err != nil {
		return res, err
	}
	done := 0
	shift := map[string]int64{} // per list: how far elements moved up since read
	for pass := 1; ; pass++ {
		clear(shift)
		first := pass == 1
		var census map[string]int
		rewrote := 0
		err := scope.each(ctx, a.store, func(it listItem) error {
			if first {
				res.Scanned++
				done++
				if p.ProgressFunc != nil {
					p.ProgressFunc(min(done, total), max(total, done))
				}
			}
			updated, encChanged, sigChanged, old, err := reseal(k.k, &it)
			switch {
			case err != nil:
				if first {
					res.Skipped++
					a.conn.logger.Warn("reencrypt: left a job under an old key", "what", it.what(), "queue", it.queue,
						"index", it.index, "job_id", it.jobID, "reason", err.Error())
				}
				census = addKeys(census, old)
				return nil
			case updated == nil:
				return nil
			case !first:
				res.Scanned++ // missed by the first pass: it moved past the reader
			}
			// Workers pop from the head while the list is read: aim at where
			// the last rewrite found its element, not where it was read.
			list := it.queue
			if it.failed {
				list = "\x00failed"
			}
			hint := max(it.index-shift[list], 0)
			var at int64
			var ok bool
			if it.failed {
				at, ok, err = a.store.ReplaceFailure(ctx, hint, it.raw, updated)
			} else {
				at, ok, err = a.store.ReplaceQueued(ctx, it.queue, hint, it.raw, updated)
			}
			if err != nil {
				return fmt.Errorf("reencrypt: rewrite %s %d of queue %s: %w", it.what(), it.index, it.queue, err)
			}
			if !ok {
				res.Gone++
				return nil
			}
			shift[list] = it.index - at
			rewrote++
			if encChanged {
				res.Reencrypted++
			}
			if sigChanged {
				res.Resigned++
			}
			return nil
		})
		if err != nil {
			return res, err
		}
		if first && p.ProgressFunc != nil && done < total {
			p.ProgressFunc(total, total) // the lists shrank while being read
		}
		if rewrote == 0 || pass == 5 {
			for kid, n := range census {
				res.Remaining[kid] += n
			}
			break
		}
	}
	running, err := a.runningKeyUse(ctx, k.k)
	if err != nil {
		return res, err
	}
	for kid, n := range running.byKey {
		res.Remaining[kid] += n
	}
	res.InFlight = running.jobs
	return res, nil
}

// KeyUsage counts, for every key id found in a signature or ciphertext, the
// queued jobs, failure records and running jobs that use it. Before
// retiring a key, check that it is not here (run Reencrypt first).
func (a *Admin) KeyUsage(ctx context.Context) (map[string]int, error) {
	scope, err := a.keyScope(ctx, nil)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	err = scope.each(ctx, a.store, func(it listItem) error {
		for _, kid := range payloadKeys(it.payload) {
			out[kid]++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	running, err := a.runningKeyUse(ctx, nil)
	if err != nil {
		return nil, err
	}
	for kid, n := range running.byKey {
		out[kid] += n
	}
	return out, nil
}

// keyScope is the lists a re-encryption or key census reads.
type keyScope struct {
	queues []string
	only   map[string]bool // failure records of these queues; nil: all
}

func (a *Admin) keyScope(ctx context.Context, queues []string) (keyScope, error) {
	if len(queues) > 0 {
		only := map[string]bool{}
		for _, q := range queues {
			only[q] = true
		}
		return keyScope{queues: queues, only: only}, nil
	}
	names, err := a.store.QueueNames(ctx)
	if err != nil {
		return keyScope{}, err
	}
	return keyScope{queues: names}, nil
}

func (s keyScope) size(ctx context.Context, store *wire.Store) (int, error) {
	sizes, err := store.QueueSizes(ctx, s.queues)
	if err != nil {
		return 0, err
	}
	n, err := store.FailedCount(ctx)
	if err != nil {
		return 0, err
	}
	total := int(n)
	for _, m := range sizes {
		total += int(m)
	}
	return total, nil
}

// listItem is one queued job or failure record as read.
type listItem struct {
	failed  bool
	queue   string // the job's queue (a failure record's "queue")
	index   int64
	raw     []byte // the list element
	payload []byte // the job payload (raw itself for a queued job)
	jobID   string
}

func (it listItem) what() string {
	if it.failed {
		return "failure record"
	}
	return "queued job"
}

const keyScanPage = 200

// each calls fn for every queued job of the scope's queues, then every
// failure record in scope, reading pages of keyScanPage elements.
func (s keyScope) each(ctx context.Context, store *wire.Store, fn func(listItem) error) error {
	for _, q := range s.queues {
		for start := int64(0); ; start += keyScanPage {
			raws, err := store.QueueRange(ctx, q, start, keyScanPage)
			if err != nil {
				return err
			}
			for i, raw := range raws {
				if err := fn(listItem{queue: q, index: start + int64(i), raw: raw, payload: raw}); err != nil {
					return err
				}
			}
			if len(raws) < keyScanPage {
				break
			}
		}
	}
	for start := int64(0); ; start += keyScanPage {
		recs, err := store.FailedRange(ctx, start, keyScanPage)
		if err != nil {
			return err
		}
		for _, r := range recs {
			f := r.Failure
			if r.Err != nil || len(f.Payload) == 0 || (s.only != nil && !s.only[f.Queue]) {
				continue
			}
			if err := fn(listItem{failed: true, queue: f.Queue, index: r.Index, raw: r.Raw, payload: f.Payload}); err != nil {
				return err
			}
		}
		if len(recs) < keyScanPage {
			break
		}
	}
	return nil
}

// reseal returns the list element rewritten under the keyring's primaries
// (nil when it needs no change, or cannot be changed: err says why, and
// old names the non-primary keys it still uses).
func reseal(k *envelope.Keyring, it *listItem) (updated []byte, encChanged, sigChanged bool, old []string, err error) {
	p, derr := wire.DecodePayload(it.payload)
	if derr != nil || (p.Envelope.Enc == nil && p.Envelope.Sig == nil) {
		return nil, false, false, nil, nil // no envelope: nothing to move
	}
	it.jobID = p.ID
	env := p.Envelope
	old = oldKeys(env, k)
	if len(old) == 0 {
		return nil, false, false, nil, nil
	}
	if err := wire.CheckDuplicateKeys(it.payload); err != nil {
		return nil, false, false, old, err
	}
	s, changed, err := k.Reseal(p.Meta(it.queue), p.Args, env)
	if err != nil || !changed {
		return nil, false, false, old, err
	}
	payload, err := wire.ReplaceEnvelope(it.payload, s.Args, s.Envelope)
	if err != nil {
		return nil, false, false, old, err
	}
	updated = payload
	if it.failed {
		if updated, err = wire.SetFailurePayload(it.raw, payload); err != nil {
			return nil, false, false, old, err
		}
	}
	return updated, s.Enc != env.Enc, s.Sig != env.Sig, nil, nil
}

// oldKeys returns the key ids an envelope names other than k's primaries
// (every id it names when k is nil).
func oldKeys(env envelope.Envelope, k *envelope.Keyring) []string {
	var out []string
	if e := env.Enc; e != nil && (k == nil || e.KID != k.EncryptionPrimary()) {
		out = append(out, e.KID)
	}
	if sig := env.Sig; sig != nil && (k == nil || sig.KID != k.SigningPrimary()) {
		out = append(out, sig.KID)
	}
	return out
}

// payloadKeys returns the key ids a payload's envelope names.
func payloadKeys(payload []byte) []string {
	p, err := wire.DecodePayload(payload)
	if err != nil {
		return nil
	}
	return oldKeys(p.Envelope, nil)
}

func addKeys(m map[string]int, kids []string) map[string]int {
	if len(kids) == 0 {
		return m
	}
	if m == nil {
		m = map[string]int{}
	}
	for _, kid := range kids {
		m[kid]++
	}
	return m
}

// keyUse counts running jobs by the keys they use.
type keyUse struct {
	jobs  int
	byKey map[string]int
}

// runningKeyUse counts the running jobs (the workers' in-flight records)
// and the jobs being picked up (pickup lists) that use a key other than k's
// primaries (any key when k is nil).
func (a *Admin) runningKeyUse(ctx context.Context, k *envelope.Keyring) (keyUse, error) {
	u := keyUse{byKey: map[string]int{}}
	states, err := a.store.WorkerStates(ctx)
	if err != nil {
		return u, err
	}
	payloads, err := a.store.PickedUpPayloads(ctx)
	if err != nil {
		return u, err
	}
	for _, st := range states {
		if len(st.Record) == 0 {
			continue
		}
		rec, err := wire.DecodeWorkingOn(st.Record)
		if err != nil {
			continue
		}
		payloads = append(payloads, rec.Payload)
	}
	for _, raw := range payloads {
		p, err := wire.DecodePayload(raw)
		if err != nil {
			continue
		}
		if kids := oldKeys(p.Envelope, k); len(kids) > 0 {
			u.jobs++
			for _, kid := range kids {
				u.byKey[kid]++
			}
		}
	}
	return u, nil
}
