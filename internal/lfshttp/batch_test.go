package lfshttp

import (
	"net/http"
	"strings"
	"testing"
)

func TestBatchCheck(t *testing.T) {
	oid := strings.Repeat("a", 64)
	one := []batchObject{{OID: oid, Size: 1}}
	many := make([]batchObject, maxBatchObjects+1)
	tests := []struct {
		name string
		req  batchRequest
		code int // 0: accepted
	}{
		{"upload", batchRequest{Operation: "upload", Objects: one}, 0},
		{"download, basic among others, sha256", batchRequest{Operation: "download", Transfers: []string{"lfs-standalone-file", "basic"}, HashAlgo: "sha256", Objects: one}, 0},
		{"no operation", batchRequest{Objects: one}, http.StatusUnprocessableEntity},
		{"unknown operation", batchRequest{Operation: "delete", Objects: one}, http.StatusUnprocessableEntity},
		{"no basic adapter", batchRequest{Operation: "upload", Transfers: []string{"tus"}, Objects: one}, http.StatusUnprocessableEntity},
		{"sha512", batchRequest{Operation: "upload", HashAlgo: "sha512", Objects: one}, http.StatusConflict},
		{"no objects", batchRequest{Operation: "upload"}, http.StatusUnprocessableEntity},
		{"too many objects", batchRequest{Operation: "download", Objects: many}, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.req.check()
			switch {
			case tt.code == 0 && e != nil:
				t.Fatalf("refused: %d %s", e.code, e.msg)
			case tt.code != 0 && e == nil:
				t.Fatalf("accepted, want %d", tt.code)
			case tt.code != 0 && e.code != tt.code:
				t.Fatalf("code %d (%s), want %d", e.code, e.msg, tt.code)
			}
		})
	}
}
