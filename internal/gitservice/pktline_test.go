package gitservice

import "testing"

func TestPktLine(t *testing.T) {
	if got := string(PktLine("# service=git-upload-pack\n")); got != "001e# service=git-upload-pack\n" {
		t.Errorf("PktLine: %q", got)
	}
}
