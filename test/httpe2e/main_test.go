// Package httpe2e holds cpm's end-to-end tests of git over HTTP(S), Git
// LFS's HTTP API and access tokens: real git, git-lfs and go clients
// against the real binaries. It is a package of its own so that `go test`
// runs it beside ./test.
package httpe2e

import (
	"fmt"
	"os"
	"testing"

	"cpm/internal/pgtest"
	"cpm/internal/testworld"
)

var bin testworld.Bin

// pg is the PostgreSQL server of this test run (one database per world).
var pg *pgtest.Server

func TestMain(m *testing.M) {
	var err error
	bin, err = testworld.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pg, err = pgtest.Start()
	if err != nil {
		bin.Cleanup()
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if os.Getenv("CPM_TEST_DATABASE") == "postgres" {
		bin = bin.OnDatabase(pg.Database)
	}
	code := m.Run()
	pg.Stop()
	bin.Cleanup()
	os.Exit(code)
}
