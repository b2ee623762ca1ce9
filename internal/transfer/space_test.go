package transfer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestToSend(t *testing.T) {
	dir := t.TempDir()
	files := map[string]int{
		"objects/pack/pack-a.pack":      1000,
		"objects/pack/pack-a.idx":       100,
		"objects/ab/cdef":               10,
		"objects/pack/tmp_pack_x":       5000, // git's temporary file: never sent
		"objects/incoming-1/ab/cd":      7000, // a push's quarantine
		"objects/pack/pack-a.keep":      1,
		"objects/info/commit-graph":     50,
		"lfs/objects/aa/bb/aabbcc":      300,
		"objects/pack/pack-b.pack.lock": 9000,
	}
	for p, n := range files {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	listing := strings.Join([]string{
		"1000 objects/pack/pack-a.pack",
		"99 objects/pack/pack-a.idx", // another size: sent again
		"300 lfs/objects/aa/bb/aabbcc",
		"77 objects/pack/pack-old.pack", // only there
		"garbage",
	}, "\n")
	for _, tc := range []struct {
		name    string
		listing string
		want    int64
	}{
		{"a new replica", "", 1000 + 100 + 10 + 50 + 300},
		{"a replica that has some", listing, 100 + 10 + 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := toSend(dir, parseListing(tc.listing))
			if err != nil || got != tc.want {
				t.Errorf("toSend = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
	// No LFS folder at all is no error.
	os.RemoveAll(filepath.Join(dir, "lfs"))
	if got, err := toSend(dir, nil); err != nil || got != 1160 {
		t.Errorf("without lfs: %d, %v", got, err)
	}
}

func TestDiskFullError(t *testing.T) {
	e := &DiskFullError{Free: 10<<20 + 5, Send: 70<<20 + 1, Margin: 64 << 20}
	if got, want := e.Error(), "disk full: 10 MiB free, needs 135 MiB (71 to send, a margin of 64)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
