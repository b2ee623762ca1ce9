// Package test holds cpm's end-to-end tests: they build the real binaries
// and drive them the way an operator or a developer would.
package test

import (
	"fmt"
	"os"
	"testing"

	"cpm/internal/testworld"
)

var bin testworld.Bin

func TestMain(m *testing.M) {
	var err error
	bin, err = testworld.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	bin.Cleanup()
	os.Exit(code)
}
