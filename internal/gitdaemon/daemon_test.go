package gitdaemon

import (
	"fmt"
	"strings"
	"testing"
)

func pkt(s string) string { return fmt.Sprintf("%04x%s", len(s)+4, s) }

func TestReadRequest(t *testing.T) {
	r, err := ReadRequest(strings.NewReader(pkt("git-upload-pack /acme/web.git\x00host=example:9418\x00\x00version=2\x00")))
	if err != nil || r.Service != "git-upload-pack" || r.Path != "/acme/web.git" || r.Host != "example:9418" ||
		len(r.Extra) != 1 || r.Extra[0] != "version=2" {
		t.Errorf("%+v %v", r, err)
	}
	if r, err := ReadRequest(strings.NewReader(pkt("git-upload-pack /a/b.git\x00host=h\x00"))); err != nil || len(r.Extra) != 0 {
		t.Errorf("v0 request: %+v %v", r, err)
	}
	for _, bad := range []string{"", "00", "zzzz", "0004", "ffff" + strings.Repeat("a", 10), pkt("nospace"), "0010short"} {
		if _, err := ReadRequest(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
