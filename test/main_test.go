// Package test holds cpm's end-to-end tests: they build the real binaries
// and drive them the way an operator or a developer would.
package test

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
