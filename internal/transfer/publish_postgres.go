package transfer

import (
	"context"

	"cpm/internal/remote"
	"cpm/internal/shellquote"
)

// DatabasePointerName is the file a backup receives in place of the
// database snapshot when the metadata lives in PostgreSQL: the database's
// URL without its password. The database is its operators' to back up
// (streaming replicas, pg_dump, the provider's snapshots); promote reads
// the file to say where the metadata is.
const DatabasePointerName = "database"

func (p *Publisher) sendDatabasePointer(ctx context.Context, t remote.Target) (int64, error) {
	dir := t.Path + "/" + SnapshotDir
	where := p.Store.Path() // the URL, password masked
	cmd := "mkdir -p -m 700 " + shellquote.Quote(dir) +
		" && rm -f " + shellquote.Quote(dir+"/"+SnapshotName) +
		" && printf '%s\\n' " + shellquote.Quote(where) + " > " + shellquote.Quote(dir+"/"+DatabasePointerName)
	if _, err := p.Syncer.Remote.Run(ctx, t, cmd); err != nil {
		return 0, err
	}
	return int64(len(where) + 1), nil
}
