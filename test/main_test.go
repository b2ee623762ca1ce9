// Package test holds cpm's end-to-end tests: they build the real binaries
// and drive them the way an operator or a developer would.
package test

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
	// CPM_TEST_DATABASE=postgres runs every test on PostgreSQL.
	if os.Getenv("CPM_TEST_DATABASE") == "postgres" {
		bin = bin.OnDatabase(pg.Database)
	}
	code := m.Run()
	pg.Stop()
	bin.Cleanup()
	os.Exit(code)
}
