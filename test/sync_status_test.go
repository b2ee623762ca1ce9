package test

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"cpm/internal/testworld"
)

// TestSyncStatusSumsUpManyRows: beyond 100 rows sync status prints counts
// per server and state, the oldest row not synced and the first 20
// failures with how many more there are; --all prints every row and
// --json every row with its keys, as for a small installation.
func TestSyncStatusSumsUpManyRows(t *testing.T) {
	w := testworld.New(t, bin)
	w.MustAdmin("org", "create", "acme")
	for i := range 55 {
		w.MustAdmin("repo", "create", fmt.Sprintf("acme/r%02d", i))
	}
	hostKey := w.NewKey("hostkey").Public
	for _, s := range []string{"b1", "b2"} {
		w.MustAdmin("server", "add", s, "--host", "127.0.0.1", "--port", "1", "--path", "/nowhere", "--role", "backup", "--host-key", hostKey)
	}
	// 25 of b2's rows failed (the workers would have written these).
	db, err := sql.Open("sqlite3", filepath.Join(w.DataDir, "cpm.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE replication_jobs SET state = 'failed', attempts = 3, last_error = 'connect: connection refused'
		WHERE server_id = (SELECT id FROM servers WHERE name = 'b2')
		AND repo_id IN (SELECT id FROM repos ORDER BY name LIMIT 25)`); err != nil {
		t.Fatal(err)
	}

	out := w.MustAdmin("sync", "status")
	for _, want := range []string{
		"110 rows on 2 servers, summed up; --all to list every row",
		"oldest not synced: acme/",
		"5 more failures; --all to list every row",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if got := countLines(out, "connection refused"); got != 20 {
		t.Errorf("summary lists %d failures, want 20:\n%s", got, out)
	}
	if fields := fieldsOf(out, "b2"); strings.Join(fields, " ") != "b2 0 30 0 25 0 0" {
		t.Errorf("b2's counts: %q\n%s", fields, out)
	}
	all := w.MustAdmin("sync", "status", "--all")
	if got := countLines(all, "acme/r"); got != 110 {
		t.Errorf("--all prints %d rows, want 110", got)
	}
	if got := countLines(all, "connection refused"); got != 25 {
		t.Errorf("--all prints %d failures, want 25", got)
	}
	rows := jsonList(t, w, "sync", "status")
	if len(rows) != 110 {
		t.Fatalf("--json prints %d rows, want 110", len(rows))
	}
	for _, k := range []string{"repo", "server", "state", "lag_seconds", "attempts", "last_error", "last_success_at", "fingerprint", "deep_checked_at", "deep_result"} {
		if _, ok := rows[0][k]; !ok {
			t.Errorf("--json row lacks %q: %v", k, rows[0])
		}
	}
	// At 100 rows and below, every row as before.
	w.MustAdmin("server", "remove", "b2")
	if got := countLines(w.MustAdmin("sync", "status"), "acme/r"); got != 55 {
		t.Errorf("a small installation's status prints %d rows, want 55", got)
	}
}

func countLines(out, substr string) int {
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// fieldsOf is the first line of out whose first field is first, split.
func fieldsOf(out, first string) []string {
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == first {
			return f
		}
	}
	return nil
}
