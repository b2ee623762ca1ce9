package transfer

import (
	"testing"
)

func TestFingerprintIsOrderFree(t *testing.T) {
	a := Fingerprint([]string{"1 refs/heads/a", "2 HEAD"})
	if a != Fingerprint([]string{"2 HEAD", "1 refs/heads/a"}) || a == Fingerprint([]string{"1 refs/heads/a"}) {
		t.Error("fingerprint depends on order or ignores HEAD")
	}
}
