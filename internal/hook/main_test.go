package hook

import (
	"os"
	"testing"

	"cpm/internal/pgtest"
)

// pg is the PostgreSQL server the cluster tests share (one database
// each), started by TestMain and stopped after the last test.
var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}
