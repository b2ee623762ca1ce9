// Package httpe2e holds cpm's end-to-end tests of git over HTTP(S), Git
// LFS's HTTP API and access tokens: real git, git-lfs and go clients
// against the real binaries. It is a package of its own so that `go test`
// runs it beside ./test.
package httpe2e

import (
	"os"
	"testing"

	"cpm/internal/pgtest"
	"cpm/internal/testworld"
)

var bin testworld.Bin

// pg is the PostgreSQL server of this test run (one database per world).
var pg *pgtest.Server

func TestMain(m *testing.M) { os.Exit(testworld.Main(m, &bin, &pg)) }
