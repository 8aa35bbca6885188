// Package signing implements the ed25519 keys and detached signatures that
// kroll uses for release manifests and mitigation policies.
//
// # Keys
//
// A key pair lives in two PEM files: PREFIX.key holds the private key as a
// PKCS#8 "PRIVATE KEY" block (mode 0600) and PREFIX.pub the public key as a
// PKIX "PUBLIC KEY" block, the formats openssl uses, so
//
//	openssl pkey -in PREFIX.key -pubout
//
// prints PREFIX.pub. A public key is referred to by its KeyID, the hex of the
// first 8 bytes of the SHA-256 of the raw 32-byte key.
//
// # Signatures
//
// A detached signature (the FILE.sig that `krollctl sign` writes) is a small
// JSON object:
//
//	{"alg":"ed25519","key_id":"0123456789abcdef","context":"kroll-policy-v1","sig":"<base64>"}
//
// The signed bytes are domain-separated: ed25519 signs
//
//	context || 0x00 || message
//
// so a signature made for one kind of document (context "kroll-release-v1")
// can never be presented as valid for another ("kroll-policy-v1"). Which
// message is signed is the caller's business; the release and policy
// packages sign their canonical encodings.
package signing
