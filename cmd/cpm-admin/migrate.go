package main

import (
	"fmt"

	"cpm/internal/admin"
)

type migrateStoreCmd struct {
	To   string `required:"" placeholder:"URL" help:"postgres:// URL of an empty PostgreSQL database (13 or newer) that this installation's metadata is copied into."`
	JSON bool   `name:"json" help:"Print JSON."`
}

func (c migrateStoreCmd) Run(e *env) error {
	m, err := admin.MigrateStore(e.ctx, e.dir, e.database, c.To)
	if err != nil {
		return err
	}
	if c.JSON {
		return printJSON(e.stdout, m)
	}
	rows := make([][]string, 0, len(m.Tables))
	for _, t := range m.Tables {
		rows = append(rows, []string{t.Table, fmt.Sprint(t.Source), fmt.Sprint(t.Copied)})
	}
	if err := printTable(e.stdout, []string{"TABLE", "SQLITE", "POSTGRESQL"}, rows); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "copied %s into %s; every count matches\n", m.From, m.To)
	fmt.Fprintf(e.stdout, "to switch (cpm stopped since before the copy): cpm-admin init --data-dir %s --database URL (the URL above, with its password), and start cpm again\n", e.dir)
	fmt.Fprintf(e.stdout, "database: %s\n", m.To)
	return nil
}
