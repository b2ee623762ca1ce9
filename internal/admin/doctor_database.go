package admin

import (
	"context"
	"fmt"

	"cpm/internal/store"
)

// minPostgres is the oldest PostgreSQL cpm supports: citext is a trusted
// extension from 13 on, so a database owner can create the schema.
const minPostgres = 13

// checkDatabase reports the engine, that it answers, its schema version
// against this build's and, for PostgreSQL, the server's version.
func checkDatabase(ctx context.Context, st *store.Store) (problems []string, detail string) {
	server, major, err := st.ServerVersion(ctx)
	if err != nil {
		return []string{err.Error()}, ""
	}
	v, err := st.Version(ctx)
	if err != nil {
		return []string{fmt.Sprintf("read schema version: %v", err)}, ""
	}
	if v != store.SchemaVersion() {
		problems = append(problems, fmt.Sprintf("schema version %d, this cpm knows %d", v, store.SchemaVersion()))
	}
	if st.Engine() == "postgres" && major < minPostgres {
		problems = append(problems, fmt.Sprintf("%s is older than PostgreSQL %d", server, minPostgres))
	}
	if st.Engine() == "postgres" {
		return problems, fmt.Sprintf("%s at %s, schema version %d", server, st.Path(), v)
	}
	return problems, fmt.Sprintf("%s, schema version %d", server, v)
}

// integrityDetail says what the integrity check was on each engine.
func integrityDetail(st *store.Store) string {
	if st.Engine() == "postgres" {
		return "the server answers (PostgreSQL keeps its own files whole)"
	}
	return "PRAGMA integrity_check: ok"
}
