// Package dburl checks the database setting (a postgres:// URL) and masks
// its password wherever it could be shown: config show, logs, errors.
package dburl

import (
	"fmt"
	"net/url"
	"strings"
)

// Parse checks a database setting and returns it with the
// password masked, for messages. Only postgres:// (or postgresql://) URLs
// are accepted: the key=value form could not be redacted reliably.
func Parse(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("database: not a URL (want postgres://USER:PASSWORD@HOST:PORT/DB)")
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		// Not echoed: a string that is not a URL may still hold a password.
		return "", fmt.Errorf("database: want a postgres:// URL, or empty for SQLite in the data directory")
	}
	if u.Host == "" && u.Query().Get("host") == "" {
		return "", fmt.Errorf("database: %s: the URL names no host", u.Redacted())
	}
	return u.Redacted(), nil
}

// Redact masks the password of a database URL, and of any text that
// quotes one; text that is not a URL comes back unchanged.
func Redact(s string) string {
	i := strings.Index(s, "postgres")
	if i < 0 {
		return s
	}
	end := strings.IndexAny(s[i:], " \t\n\"'`")
	if end < 0 {
		end = len(s) - i
	}
	raw := s[i : i+end]
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return s
	}
	return s[:i] + u.Redacted() + Redact(s[i+end:])
}
