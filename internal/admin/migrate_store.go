package admin

import (
	"context"
	"errors"

	"cpm/internal/datadir"
	"cpm/internal/store"
)

// Migration is what migrate-store did.
type Migration struct {
	From   string             `json:"from"`
	To     string             `json:"to"` // the URL without its password
	Tables []store.TableCount `json:"tables"`
}

// MigrateStore copies the data directory's SQLite metadata into the empty
// PostgreSQL database at to, creating its schema first. The installation
// keeps running on SQLite: switching is the operator's step, after
// stopping cpm, so that no write lands in the old database afterwards.
func MigrateStore(ctx context.Context, dir datadir.Dir, database, to string) (Migration, error) {
	current, err := dir.Database(database)
	if err != nil {
		return Migration{}, err
	}
	if current != "" {
		return Migration{}, errors.New("migrate-store: this installation is on PostgreSQL already; it copies a SQLite installation (--data-dir) into PostgreSQL")
	}
	if to == "" {
		return Migration{}, errors.New("migrate-store: --to needs a postgres:// URL")
	}
	src, err := store.Open(ctx, dir.DB())
	if err != nil {
		return Migration{}, err
	}
	defer src.Close()
	dst, err := store.InitAt(ctx, to, "")
	if err != nil {
		return Migration{}, err
	}
	defer dst.Close()
	m := Migration{From: src.Path(), To: dst.Path()}
	m.Tables, err = src.CopyTo(ctx, dst)
	return m, err
}
