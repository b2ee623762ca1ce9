package sshkey

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/crypto/ssh"
)

// Generate writes a new ed25519 key pair: the private key to path (0600,
// OpenSSH format) and the public key to path.pub (0644). Existing files are
// never overwritten.
func Generate(path, comment string) (Key, error) {
	privPEM, sshPub, err := NewEd25519(comment)
	if err != nil {
		return Key{}, err
	}
	line := ssh.MarshalAuthorizedKey(sshPub)
	if comment != "" {
		line = append(line[:len(line)-1], []byte(" "+cleanComment(comment)+"\n")...)
	}
	for _, p := range []string{path, path + ".pub"} {
		if _, err := os.Lstat(p); err == nil {
			return Key{}, fmt.Errorf("generate key: %s already exists", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return Key{}, fmt.Errorf("generate key: %w", err)
		}
	}
	if err := writeNew(path, privPEM, 0o600); err != nil {
		return Key{}, err
	}
	if err := writeNew(path+".pub", line, 0o644); err != nil {
		os.Remove(path)
		return Key{}, err
	}
	return Parse(line)
}

// NewEd25519 makes an ed25519 key pair in memory: the private key in
// OpenSSH's PEM format, and the public key.
func NewEd25519(comment string) ([]byte, ssh.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	return pem.EncodeToMemory(block), sshPub, nil
}

// writeNew creates path exclusively with mode, whatever the umask says.
func writeNew(path string, body []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	if _, err := f.Write(body); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("generate key: %w", err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("generate key: %w", err)
	}
	return f.Close()
}
