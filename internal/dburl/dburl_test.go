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
		{"postgres://db/cpm?password=s3cret&sslmode=require", "postgres://db/cpm?password=xxxxx&sslmode=require"},
		{"postgres://cpm:s3cret@db/cpm?PassWord=s3cret", "postgres://cpm:xxxxx@db/cpm?PassWord=xxxxx"},
		{"postgres://db/cpm?sslpassword=s3cret", "postgres://db/cpm?sslpassword=xxxxx"},
		{"POSTGRES://cpm:s3cret@db/cpm", "postgres://cpm:xxxxx@db/cpm"},
		{"user=postgres then postgres://u:s3cret@h/db", "user=postgres then postgres://u:xxxxx@h/db"},
		{"postgres://u:s3%zz@h/db", "postgres://xxxxx@h/db"},
	} {
		if got := Redact(tt.in); got != tt.want || strings.Contains(got, "s3") {
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

func TestParseMasksEverySecret(t *testing.T) {
	for _, in := range []string{
		"postgres://cpm:s3cret@db/cpm",
		"postgres://cpm@db/cpm?password=s3cret",
		"postgresql://db/cpm?sslpassword=s3cret&sslmode=verify-full",
	} {
		got, err := Parse(in)
		if err != nil || strings.Contains(got, "s3cret") || !strings.Contains(got, "xxxxx") {
			t.Errorf("Parse(%q) = %q, %v", in, got, err)
		}
	}
}
