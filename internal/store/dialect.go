package store

import (
	"errors"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// dialect is the SQL engine behind a Store. The statements are written
// once, in the subset both engines share (ON CONFLICT upserts, RETURNING,
// integer 0/1 flags, text timestamps that sort as times); the few that
// differ are chosen by dialect where they are built.
type dialect int

const (
	sqlite dialect = iota
	postgres
)

func (d dialect) String() string {
	if d == postgres {
		return "postgres"
	}
	return "sqlite"
}

// rebind turns SQLite's placeholders (? and ?N) into PostgreSQL's $N. A
// bare ? takes the number after the largest one used so far, which is
// SQLite's own rule, so statements that mix both mean the same on both
// engines. Quoted strings and identifiers are copied untouched.
func (d dialect) rebind(q string) string {
	if d != postgres || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	largest := 0
	var quote byte
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
			b.WriteByte(c)
		case c == '\'' || c == '"':
			quote = c
			b.WriteByte(c)
		case c == '?':
			j := i + 1
			for j < len(q) && q[j] >= '0' && q[j] <= '9' {
				j++
			}
			n := largest + 1
			if j > i+1 {
				n, _ = strconv.Atoi(q[i+1 : j])
			}
			largest = max(largest, n)
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			i = j - 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// args adapts Go values to the schema: flags are INTEGER 0/1 columns on
// both engines (SQLite has no boolean), and PostgreSQL will not take a Go
// bool for an integer parameter.
func (d dialect) args(args []any) []any {
	if d != postgres {
		return args
	}
	for i, a := range args {
		if b, ok := a.(bool); ok {
			n := 0
			if b {
				n = 1
			}
			args[i] = n
		}
	}
	return args
}

// isUnique reports a violated unique constraint on either engine.
func isUnique(err error) bool {
	if err == nil {
		return false
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "23505"
	}
	return strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// nocase is col compared without regard to letter case. Names are
// case-insensitive columns on both engines (COLLATE NOCASE on SQLite,
// citext on PostgreSQL), so this only matters where SQLite needs telling.
func (d dialect) nocase(col string) string {
	if d == postgres {
		return col
	}
	return col + " COLLATE NOCASE"
}

// exactCase is col compared byte for byte, overriding its collation.
func (d dialect) exactCase(col string) string {
	if d == postgres {
		return col + "::text"
	}
	return col + " COLLATE BINARY"
}

// clock is an SQL expression for the database's time now, in timeFormat:
// leases and elections are judged by the database's one clock, never by
// the clocks of the nodes that renew and read them.
func (d dialect) clock() string {
	if d == postgres {
		return `to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`
	}
	return `strftime('%Y-%m-%dT%H:%M:%fZ', 'now')`
}

// clockPlus is clock plus ms milliseconds (a placeholder or literal).
func (d dialect) clockPlus(ms string) string {
	if d == postgres {
		return `to_char(clock_timestamp() AT TIME ZONE 'UTC' + (` + ms + `) * interval '1 millisecond', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`
	}
	return `strftime('%Y-%m-%dT%H:%M:%fZ', 'now', (` + ms + `) / 1000.0 || ' seconds')`
}
