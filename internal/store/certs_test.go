package store

import (
	"bytes"
	"context"
	"testing"
)

func TestRevokedKeys(t *testing.T) { onBoth(t, testRevokedKeys) }

// testRevokedKeys: no list until one is set; a list set replaces the one
// before, byte for byte (a KRL is binary), with an audit row each time.
func testRevokedKeys(t *testing.T, newStore func(*testing.T) *Store) {
	ctx := context.Background()
	s := newStore(t)
	if got, err := s.RevokedKeys(ctx); err != nil || got != nil {
		t.Fatalf("before any ca revoke: %q %v, want none", got, err)
	}
	for _, krl := range [][]byte{[]byte("SSHKRL\n\x00\x01\xff first"), []byte("SSHKRL\n\x00 second")} {
		if err := s.SetRevokedKeys(ctx, admin, krl); err != nil {
			t.Fatal(err)
		}
		if got, err := s.RevokedKeys(ctx); err != nil || !bytes.Equal(got, krl) {
			t.Errorf("after setting %q: %q %v", krl, got, err)
		}
	}
	entries, err := s.Audit(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if e.Action == "ca.revoke" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d ca.revoke audit rows, want 2", n)
	}
}
