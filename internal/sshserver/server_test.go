package sshserver

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	gossh "golang.org/x/crypto/ssh"

	"cpm/internal/access"
	"cpm/internal/gateway"
	"cpm/internal/store"
)

func newKey(t *testing.T) gossh.PublicKey {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	k, err := gossh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// x/crypto calls the callback for every key a client offers, with or
// without a signature, and hands the connection the Permissions returned
// for the key that signed. If those Permissions were one shared object
// (as gliderlabs' own PublicKeyHandler returns), the last offered key
// would decide the identity: CVE-2024-45337. Each call must return its
// own object, carrying its own key.
func TestPermissionsArePerKey(t *testing.T) {
	ctx := context.Background()
	st, err := store.Init(ctx, filepath.Join(t.TempDir(), "cpm.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	victim, attacker := newKey(t), newKey(t)
	for name, k := range map[string]gossh.PublicKey{"victim": victim, "attacker": attacker} {
		fp := gossh.FingerprintSHA256(k)
		if _, err := st.CreateUser(ctx, store.Actor{Name: "t"}, name, name == "victim",
			&store.NewKey{Fingerprint: fp, Type: k.Type(), PublicKey: string(gossh.MarshalAuthorizedKey(k))}); err != nil {
			t.Fatal(err)
		}
	}
	s := New(&gateway.Gateway{Access: access.New(st, nil)}, nil, DefaultLimits, zerolog.Nop())
	cfg := s.serverConfig(ctx)

	signed, err := cfg.PublicKeyCallback(nil, attacker) // the key that will sign
	if err != nil {
		t.Fatal(err)
	}
	offered, err := cfg.PublicKeyCallback(nil, victim) // offered afterwards, never signed
	if err != nil {
		t.Fatal(err)
	}
	if signed == offered {
		t.Fatal("one Permissions object shared between keys")
	}
	if got := signed.Extensions[fingerprintExt]; got != gossh.FingerprintSHA256(attacker) {
		t.Errorf("signing key's permissions name %s", got)
	}
	if _, err := cfg.PublicKeyCallback(nil, newKey(t)); err == nil {
		t.Error("unknown key accepted")
	}
	// gliderlabs turns on NoClientAuth when it has no auth handler; the
	// "none" method must still fail, and no other method may be offered.
	if cfg.NoClientAuth && (cfg.NoClientAuthCallback == nil || func() bool { _, err := cfg.NoClientAuthCallback(nil); return err == nil }()) {
		t.Error(`"none" authentication would let clients in without a key`)
	}
	if s.srv.KeyboardInteractiveHandler != nil || s.srv.PasswordHandler != nil || cfg.PasswordCallback != nil || cfg.KeyboardInteractiveCallback != nil {
		t.Error("a method other than publickey is offered")
	}
	if s.srv.PublicKeyHandler != nil {
		t.Error("gliderlabs' PublicKeyHandler would replace the per-key callback")
	}
}

// A key lookup during shutdown is not an answer about the key: the client
// is told the server is shutting down, never "Permission denied".
func TestAuthDuringShutdown(t *testing.T) {
	ctx := context.Background()
	st, err := store.Init(ctx, filepath.Join(t.TempDir(), "cpm.db"))
	if err != nil {
		t.Fatal(err)
	}
	k := newKey(t)
	fp := gossh.FingerprintSHA256(k)
	if _, err := st.CreateUser(ctx, store.Actor{Name: "t"}, "u", false,
		&store.NewKey{Fingerprint: fp, Type: k.Type(), PublicKey: string(gossh.MarshalAuthorizedKey(k))}); err != nil {
		t.Fatal(err)
	}
	s := New(&gateway.Gateway{Access: access.New(st, nil)}, nil, DefaultLimits, zerolog.Nop())
	cfg := s.serverConfig(ctx)

	// The store closes under a handshake: not "unknown key".
	st.Close()
	_, err = cfg.PublicKeyCallback(nil, k)
	var banner *gossh.BannerError
	if !errors.As(err, &banner) || !strings.Contains(banner.Message, "try again") {
		t.Fatalf("lookup failure answered %v, want a banner", err)
	}
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	_, err = cfg.PublicKeyCallback(nil, k)
	if !errors.As(err, &banner) || !strings.Contains(banner.Message, "shutting down") {
		t.Fatalf("during shutdown: %v", err)
	}
}
