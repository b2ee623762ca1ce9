package dburl

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"postgres://cpm:s3cret@db:5432/cpm", "postgres://cpm:xxxxx@db:5432/cpm"},
		{"connect to postgres://cpm:s3cret@db/cpm failed", "connect to postgres://cpm:xxxxx@db/cpm failed"},
		{"postgresql://cpm@db/cpm", "postgresql://cpm@db/cpm"},
		{"no url here", "no url here"},
	} {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{"mysql://x@y/z", "host=db password=s3cret", "postgres:///cpm", "::"} {
		_, err := Parse(bad)
		if err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Parse(%q): %v", bad, err)
		}
	}
}
