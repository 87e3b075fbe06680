package envelope

// Open is the worker's side of the envelope, run before a job's handler:
// it checks the signature and decrypts the args, and returns the plaintext
// args and whether a signature was verified.
//
// The signing policy: a keyring with signing keys verifies every signature
// it sees, and refuses an unsigned job unless allowUnsigned (the job's queue
// accepts unsigned jobs); a keyring without signing keys (or a nil one)
// verifies nothing. Encrypted args need the encryption key, whatever the
// policy. Refusals of a signature wrap ErrSignature; a decryption failure
// does not (it is returned with signed already set when the signature
// verified).
func (k *Keyring) Open(m Meta, args []byte, env Envelope, allowUnsigned bool) (plain []byte, signed bool, err error) {
	if k.CanVerify() && (env.Sig != nil || !allowUnsigned) {
		if err := k.Verify(m, args, env.Enc, env.Sig); err != nil {
			return nil, false, err
		}
		signed = true
	}
	if env.Enc == nil {
		return args, signed, nil
	}
	pt, err := k.Decrypt(m, env.Enc)
	if err != nil {
		return nil, signed, err
	}
	return pt, signed, nil
}
