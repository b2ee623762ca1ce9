package transfer

import (
	"bufio"
	"bytes"
	"reflect"
	"strings"
	"testing"
)

const (
	idA  = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	idB  = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	zero = "0000000000000000000000000000000000000000"
)

// RefDiff turns the refs a replica holds into the snapshot's: created,
// moved and deleted refs, each with its old value; unchanged refs are
// left out.
func TestRefDiff(t *testing.T) {
	cases := []struct {
		name     string
		from, to []string
		want     []RefUpdate
	}{
		{"nothing changed", []string{idA + " refs/heads/main"}, []string{idA + " refs/heads/main"}, nil},
		{"moved", []string{idA + " refs/heads/main"}, []string{idB + " refs/heads/main"}, []RefUpdate{{idA, idB, "refs/heads/main"}}},
		{"created", nil, []string{idA + " refs/tags/v1"}, []RefUpdate{{zero, idA, "refs/tags/v1"}}},
		{"deleted", []string{idA + " refs/heads/old", idB + " refs/heads/main"}, []string{idB + " refs/heads/main"},
			[]RefUpdate{{idA, zero, "refs/heads/old"}}},
	}
	for _, c := range cases {
		if got := RefDiff(c.from, c.to); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if got := packRevs([]string{idA + " refs/heads/main"}, []RefUpdate{{idA, idB, "refs/heads/main"}, {idB, zero, "refs/heads/x"}}); got != idB+"\n^"+idA+"\n" {
		t.Errorf("pack-objects input %q", got)
	}
}

// What a node sends before the pack is read line by line and checked:
// nothing but "OLD NEW refs/…" reaches git update-ref.
func TestReadRefUpdates(t *testing.T) {
	var buf bytes.Buffer
	want := []RefUpdate{{zero, idA, "refs/heads/main"}, {idA, idB, "refs/cpm/diverged/2/refs/heads/x"}}
	if err := WriteRefUpdates(&buf, want); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("PACK")
	r := bufio.NewReader(&buf)
	got, err := ReadRefUpdates(r)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("read back %v, %v", got, err)
	}
	if rest, _ := r.Peek(4); string(rest) != "PACK" {
		t.Fatalf("the pack after the header is %q", rest)
	}
	refused := map[string]string{
		"no end":                 zero + " " + idA + " refs/heads/main\n",
		"two spaces":             zero + "  " + idA + " refs/heads/main\n\n",
		"short id":               "abc " + idA + " refs/heads/main\n\n",
		"upper case":             strings.ToUpper(idA) + " " + idA + " refs/heads/main\n\n",
		"ids of two sizes":       zero + " " + idA + "aaaaaaaaaaaaaaaaaaaaaaaa refs/heads/main\n\n",
		"not under refs/":        zero + " " + idA + " HEAD\n\n",
		"dot dot":                zero + " " + idA + " refs/heads/../config\n\n",
		"option":                 zero + " " + idA + " --no-deref\n\n",
		"lock":                   zero + " " + idA + " refs/heads/main.lock\n\n",
		"hidden part":            zero + " " + idA + " refs/heads/.x\n\n",
		"control character":      zero + " " + idA + " refs/heads/a\rb\n\n",
		"a refspec":              zero + " " + idA + " refs/heads/a:refs/heads/b\n\n",
		"twice":                  zero + " " + idA + " refs/heads/a\n" + zero + " " + idA + " refs/heads/a\n\n",
		"a line past the buffer": zero + " " + idA + " refs/heads/" + strings.Repeat("a", 8192) + "\n\n",
	}
	for name, in := range refused {
		if got, err := ReadRefUpdates(bufio.NewReader(strings.NewReader(in))); err == nil {
			t.Errorf("%s: read %v", name, got)
		}
	}
}
