package testworld

import (
	"fmt"
	"os"
	"testing"

	"cpm/internal/pgtest"
)

// Main is the body of an end-to-end test package's TestMain: it builds
// the binaries into *bin and starts the PostgreSQL server of the run into
// *pg (one database per world), runs the tests (every one on PostgreSQL
// when CPM_TEST_DATABASE=postgres), stops both, and returns the exit
// code.
func Main(m *testing.M, bin *Bin, pg **pgtest.Server) int {
	b, err := Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer b.Cleanup()
	srv, err := pgtest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer srv.Stop()
	if os.Getenv("CPM_TEST_DATABASE") == "postgres" {
		b = b.OnDatabase(srv.Database)
	}
	*bin, *pg = b, srv
	return m.Run()
}
