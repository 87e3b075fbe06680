package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/resq-go/resq"
)

const keysNewHelp = `
Make a keyring: one signing key (Ed25519 by default, or HMAC-SHA256) and one
AES-256-GCM encryption key, both primary. The file is created with mode 0600
and never overwritten unless --force is given. Only key ids are printed,
never key material.

Producers (resq enqueue --keyring, resq.ClientConfig.Keyring) sign every job
with it and encrypt when asked; workers (resq work --keyring) refuse unsigned,
forged, altered or moved jobs and decrypt. With Ed25519, give workers the
output of 'resq keys public' instead: it cannot sign.

Example:
  resq keys new --out /etc/resq/keyring.json
  resq keys public --keyring /etc/resq/keyring.json --out /etc/resq/workers.json`

func (c *cli) cmdKeysNew(_ context.Context, args []string) error {
	fs := c.newFlags("keys new", keysNewHelp).args(0, 0, "")
	var out, typ string
	var force bool
	fs.StringVar(&out, "out", "", "write the keyring to `FILE` (required; created with mode 0600)")
	fs.StringVar(&typ, "type", resq.KeyEd25519, "signing key `TYPE`: ed25519 (producers sign, workers hold public keys only) or hmac-sha256 (one shared secret)")
	fs.BoolVar(&force, "force", false, "replace FILE if it exists (the keys in it are lost)")
	if _, err := fs.parse(args); err != nil {
		return err
	}
	if out == "" {
		return usagef("keys new", "missing --out FILE (usage: resq keys new %s)", fs.cmd.synopsis)
	}
	switch strings.ToLower(typ) {
	case "ed25519":
		typ = resq.KeyEd25519
	case "hmac-sha256", "hmac":
		typ = resq.KeyHMAC
	default:
		return usagef("keys new", "--type %q: want ed25519 or hmac-sha256", typ)
	}
	data, err := resq.NewKeyringFile(typ)
	if err != nil {
		return fmt.Errorf("make keys: %w", err)
	}
	if err := writeKeyFile("keys new", out, data, force); err != nil {
		return err
	}
	k, err := resq.ParseKeyring(data)
	if err != nil {
		return err
	}
	next := fmt.Sprintf("Producers and workers use it with --keyring %s (or RESQ_KEYRING).", out)
	if typ == resq.KeyEd25519 {
		next += fmt.Sprintf("\nWorkers only need to verify: resq keys public --keyring %s --out FILE", out)
	}
	return c.printKeyring(fmt.Sprintf("wrote keyring %s (mode 0600)", out), out, k, next)
}

func (c *cli) cmdKeysList(_ context.Context, args []string) error {
	fs := c.newFlags("keys list", "Show a keyring's keys: id, purpose, type, whether primary, creation time. Never key material.").args(0, 0, "")
	var path string
	c.keyringFlag(fs, &path, "(required)")
	if _, err := fs.parse(args); err != nil {
		return err
	}
	k, err := requireKeyring("keys list", path)
	if err != nil {
		return err
	}
	return c.printKeyring("keyring "+path, path, k, "")
}

const keysRotateHelp = `
Add a new primary signing key (of the current primary's type) and a new
primary encryption key to the keyring. The old keys stay, so jobs signed or
encrypted with them still verify and decrypt. The file is rewritten
atomically (a temporary file with mode 0600, then a rename).

After a rotation:
  1. give the workers the new keyring (for Ed25519: resq keys public) and
     restart them: they now accept the old and the new keys;
  2. restart the producers: they sign and encrypt with the new keys;
  3. resq keys reencrypt --keyring FILE moves queued and failed jobs onto them;
  4. resq keys retire --keyring FILE KEYID for each old key, and give the
     workers the keyring again.`

func (c *cli) cmdKeysRotate(_ context.Context, args []string) error {
	fs := c.newFlags("keys rotate", keysRotateHelp).args(0, 0, "")
	var path string
	c.keyringFlag(fs, &path, "to rotate (required)")
	if _, err := fs.parse(args); err != nil {
		return err
	}
	k, err := requireKeyring("keys rotate", path)
	if err != nil {
		return err
	}
	if !k.CanSign() {
		return usagef("keys rotate", "--keyring %s cannot sign (a verify-only keyring?); rotate the producers' keyring, then make the workers' one again with 'resq keys public'", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read keyring: %w", err)
	}
	rotated, err := resq.RotateKeyringFile(data)
	if err != nil {
		return fmt.Errorf("rotate %s: %w", path, err)
	}
	if err := replaceFile(path, rotated, data); err != nil {
		return err
	}
	nk, err := resq.ParseKeyring(rotated)
	if err != nil {
		return err
	}
	next := fmt.Sprintf(`Next: give the workers the new keyring and restart them; restart the producers;
then move queued and failed jobs onto the new keys: resq keys reencrypt --keyring %s
and retire each old key: resq keys retire --keyring %s KEYID`, path, path)
	return c.printKeyring(fmt.Sprintf("rotated %s: new primary keys added, old keys kept to verify and decrypt", path), path, nk, next)
}

const keysPublicHelp = `
Write the keyring workers need: Ed25519 signing keys without their private
part (a worker can verify but never sign), plus the keys that are shared
secrets by nature (HMAC keys and encryption keys, which a worker needs to
verify and decrypt). The output is created with mode 0600 and never
overwrites a file unless --force is given.`

func (c *cli) cmdKeysPublic(_ context.Context, args []string) error {
	fs := c.newFlags("keys public", keysPublicHelp).args(0, 0, "")
	var path, out string
	var force bool
	c.keyringFlag(fs, &path, "to read (required)")
	fs.StringVar(&out, "out", "", "write the workers' keyring to `FILE` (required; mode 0600)")
	fs.BoolVar(&force, "force", false, "replace FILE if it exists")
	if _, err := fs.parse(args); err != nil {
		return err
	}
	if out == "" {
		return usagef("keys public", "missing --out FILE (usage: resq keys public %s)", fs.cmd.synopsis)
	}
	if _, err := requireKeyring("keys public", path); err != nil {
		return err
	}
	if sameFile(path, out) {
		return usagef("keys public", "--out %s is the keyring itself; write the workers' keyring to another file", out)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read keyring: %w", err)
	}
	pub, err := resq.VerifyOnlyKeyringFile(data)
	if err != nil {
		return err
	}
	if err := writeKeyFile("keys public", out, pub, force); err != nil {
		return err
	}
	k, err := resq.ParseKeyring(pub)
	if err != nil {
		return err
	}
	var note string
	for _, key := range k.Keys() {
		if key.Purpose == "encryption" || key.Type == resq.KeyHMAC {
			note = "It still holds shared secrets (HMAC or encryption keys): keep it mode 0600, on worker hosts only."
			break
		}
	}
	return c.printKeyring(fmt.Sprintf("wrote workers' keyring %s (mode 0600): it verifies and decrypts, it cannot sign", out), out, k, note)
}

const keysReencryptHelp = `
Move queued jobs and failure records onto the keyring's primary keys after a
rotation, so that old keys can be retired: args encrypted under an old key
are encrypted again under the primary encryption key, and signatures by an
old key (or over ciphertext that changed) are made again with the primary
signing key. Only the signature and ciphertext fields change.

Each job is rewritten with an atomic compare-and-set on its exact bytes, so
workers may keep running: a job a worker takes meanwhile is left to it.
Nothing is signed that was not signed and verified before: unsigned jobs stay
unsigned, and jobs whose signature does not verify (forged, altered, moved to
another queue) are skipped and logged. Running jobs cannot be rewritten; they
are counted. Needs the producers' keyring (it signs), and Redis 6.0.6 or later.

Without --queue, every queue in the queues set and the whole failed list are
done; with --queue, those queues and their failure records. Progress is shown
on a terminal.`

func (c *cli) cmdKeysReencrypt(ctx context.Context, args []string) error {
	fs := c.newFlags("keys reencrypt", keysReencryptHelp).args(0, 0, "")
	var path string
	var queues []string
	c.keyringFlag(fs, &path, "after 'resq keys rotate' (required)")
	fs.Var(stringsValue{&queues}, "queue", "only the jobs and failure records of queue `Q` (repeatable, or comma-separated)")
	if _, err := fs.parse(args); err != nil {
		return err
	}
	k, err := requireKeyring("keys reencrypt", path)
	if err != nil {
		return err
	}
	var qs []string
	for _, q := range queues {
		for _, part := range strings.Split(q, ",") {
			if part = strings.TrimSpace(part); part != "" {
				qs = append(qs, part)
			}
		}
	}
	conn, err := c.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	prog := c.newProgress("re-encrypting")
	res, err := resq.NewAdmin(conn).Reencrypt(ctx, resq.ReencryptParams{Keyring: k, Queues: qs, ProgressFunc: prog.update})
	prog.finish()
	if err != nil {
		return fmt.Errorf("reencrypt in %s: %w", conn, err)
	}
	var retirable []string
	for _, key := range k.Keys() {
		if !key.Primary && res.Remaining[key.ID] == 0 {
			retirable = append(retirable, key.ID)
		}
	}
	if c.g.json {
		return c.printJSON(struct {
			resq.ReencryptResult
			Retirable []string `json:"retirable"`
		}{res, orEmpty(retirable)})
	}
	fmt.Fprintf(c.stdout, "scanned %d queued jobs and failure records in %s\n", res.Scanned, conn)
	t := newTable(c.stdout, "RESULT", "COUNT", "")
	t.row("re-encrypted", strconv.Itoa(res.Reencrypted), "encrypted args moved to the primary encryption key")
	t.row("re-signed", strconv.Itoa(res.Resigned), "signed again with the primary signing key")
	t.row("skipped", strconv.Itoa(res.Skipped), "signature or ciphertext did not check out: left as they are (see the log)")
	t.row("gone", strconv.Itoa(res.Gone), "taken by a worker (or removed) while being rewritten")
	t.row("in flight", strconv.Itoa(res.InFlight), "running now under old keys: run reencrypt again once they finish")
	t.flush()
	if len(res.Remaining) > 0 {
		ids := sortedKeys(res.Remaining)
		parts := make([]string, len(ids))
		for i, id := range ids {
			parts[i] = fmt.Sprintf("%s (%d)", id, res.Remaining[id])
		}
		fmt.Fprintf(c.stdout, "still in use, do not retire yet: %s\n", strings.Join(parts, ", "))
	}
	if len(retirable) > 0 {
		fmt.Fprintf(c.stdout, "no job in %s uses these old keys any more: %s\nretire each with: resq keys retire --keyring %s KEYID\n", conn, strings.Join(retirable, ", "), path)
	}
	return nil
}

const keysRetireHelp = `
Remove a key that is not a primary from the keyring (rotate first to retire
a primary). Unless --force is given, Redis is checked first (queued jobs,
failure records and running jobs, in the namespace given): if any job still
uses the key, nothing changes and the command says to run 'resq keys
reencrypt' first, because a job under a retired key can never run again.
The file is rewritten atomically. Give the workers the new keyring after.`

func (c *cli) cmdKeysRetire(ctx context.Context, args []string) error {
	fs := c.newFlags("keys retire", keysRetireHelp).args(1, 1, "KEYID")
	var path string
	var force bool
	c.keyringFlag(fs, &path, "to remove the key from (required)")
	fs.BoolVar(&force, "force", false, "do not check Redis: jobs still under the key can then never run")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	id := pos[0]
	if _, err := requireKeyring("keys retire", path); err != nil {
		return err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read keyring: %w", err)
	}
	retired, err := resq.RetireKey(data, id)
	if err != nil {
		return usagef("keys retire", "%s: %v", path, err)
	}
	if !force {
		conn, err := c.connect()
		if err != nil {
			return err
		}
		defer conn.Close()
		usage, err := resq.NewAdmin(conn).KeyUsage(ctx)
		if err != nil {
			return fmt.Errorf("check whether jobs in %s still use key %s: %w (retire without checking with --force)", conn, id, err)
		}
		if n := usage[id]; n > 0 {
			return fmt.Errorf("key %s is still used by %d queued jobs, failure records or running jobs in %s; nothing was changed. Run 'resq keys reencrypt --keyring %s' first (or --force: those jobs could then never run)", id, n, conn, path)
		}
	}
	if err := replaceFile(path, retired, data); err != nil {
		return err
	}
	k, err := resq.ParseKeyring(retired)
	if err != nil {
		return err
	}
	return c.printKeyring(fmt.Sprintf("retired key %s from %s", id, path), path, k, "Give the workers the new keyring (resq keys public for Ed25519) and restart them.")
}

// requireKeyring loads the --keyring of a keys command, which needs one.
func requireKeyring(cmd, path string) (*resq.Keyring, error) {
	if path == "" {
		return nil, usagef(cmd, "missing --keyring FILE (or RESQ_KEYRING)")
	}
	return loadKeyring(cmd, path)
}

// printKeyring shows a keyring's keys (ids and types only) after header,
// then an optional note; --json prints {"file", "keys"}.
func (c *cli) printKeyring(header, file string, k *resq.Keyring, note string) error {
	keys := k.Keys()
	if c.g.json {
		if keys == nil {
			keys = []resq.KeyInfo{}
		}
		return c.printJSON(map[string]any{"file": file, "keys": keys})
	}
	fmt.Fprintln(c.stdout, header)
	t := newTable(c.stdout, "ID", "PURPOSE", "TYPE", "PRIMARY", "CREATED")
	for _, key := range keys {
		typ := key.Type
		if key.PublicOnly {
			typ += " (public key only)"
		}
		primary := "no"
		if key.Primary {
			primary = "yes"
		}
		t.row(key.ID, key.Purpose, typ, primary, orDash(key.Created))
	}
	t.flush()
	if note != "" {
		fmt.Fprintln(c.stdout, note)
	}
	return nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	sort.Strings(s)
	return s
}

// writeKeyFile creates path with mode 0600 and data. An existing file is
// refused unless force is set; then it is replaced atomically.
func writeKeyFile(cmd, path string, data []byte, force bool) error {
	if force {
		return replaceFile(path, data, nil)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return usagef(cmd, "%s already exists and may hold keys in use; choose another file, or give --force to replace it", path)
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// replaceFile replaces path (the file a symlink points to, if it is one)
// with data atomically: a temporary file with mode 0600 in the same
// directory, synced, then renamed over it. When expect is non-nil, the file
// must still hold expect just before the rename, so that two rotations at
// once cannot lose a key.
func replaceFile(path string, data, expect []byte) error {
	target := path
	if real, err := filepath.EvalSymlinks(path); err == nil {
		target = real
	}
	dir := filepath.Dir(target)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(target)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	name := tmp.Name()
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil && expect != nil {
		cur, rerr := os.ReadFile(target)
		if rerr != nil {
			err = rerr
		} else if !bytes.Equal(cur, expect) {
			err = errors.New("the file changed while it was being updated (another resq keys command?); nothing was written, run the command again")
		}
	}
	if err == nil {
		err = os.Rename(name, target)
	}
	if err != nil {
		os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename durable where the platform allows
		d.Close()
	}
	return nil
}

// sameFile reports whether a and b name the same existing file.
func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}
