package lease

import (
	"os"
	"testing"

	"cpm/internal/pgtest"
)

// pg is the PostgreSQL server the tests share (one database each).
var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}
