// Package token makes and recognises the secrets of cpm's access tokens
// (git over HTTP(S)): "cpm_" and 32 base62 characters (190 bits from
// crypto/rand), a prefix that secret scanners can look for. Only a
// token's hash is ever stored.
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"
)

// Prefix starts every secret.
const Prefix = "cpm_"

// bodyLen base62 characters carry 32 × log2(62) ≈ 190 bits.
const bodyLen = 32

const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// New returns a fresh secret and its hash.
func New() (secret, hash string, err error) {
	var b strings.Builder
	b.WriteString(Prefix)
	limit := big.NewInt(int64(len(alphabet)))
	for range bodyLen {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return "", "", fmt.Errorf("make a token: %w", err)
		}
		b.WriteByte(alphabet[n.Int64()])
	}
	secret = b.String()
	return secret, Hash(secret), nil
}

// Hash is what the store keeps of a secret: hex SHA-256. The secrets are
// random and long, so nothing is gained by a slow, salted hash, and an
// equal hash is found by an index lookup rather than a compare per row.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// WellFormed reports whether s has the shape of a secret New makes, so
// that anything else is refused without a database lookup.
func WellFormed(s string) bool {
	body, ok := strings.CutPrefix(s, Prefix)
	if !ok || len(body) != bodyLen {
		return false
	}
	for i := 0; i < len(body); i++ {
		if strings.IndexByte(alphabet, body[i]) < 0 {
			return false
		}
	}
	return true
}
