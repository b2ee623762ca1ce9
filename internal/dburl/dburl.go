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
	if !isPostgres(u) {
		// Not echoed: a string that is not a URL may still hold a password.
		return "", fmt.Errorf("database: want a postgres:// URL, or empty for SQLite in the data directory")
	}
	if u.Host == "" && u.Query().Get("host") == "" {
		return "", fmt.Errorf("database: %s: the URL names no host", shown(u))
	}
	return shown(u), nil
}

func isPostgres(u *url.URL) bool { return u.Scheme == "postgres" || u.Scheme == "postgresql" }

// secretParams are the query parameters of a libpq/pgx URL that carry a
// secret (pgx takes the password from ?password= as well as from
// USER:PASSWORD@).
var secretParams = []string{"password", "sslpassword"}

// shown is u for people to read: built again from its parts with every
// secret masked, rather than trusting a redaction of the whole.
func shown(u *url.URL) string {
	v := *u
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			v.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	q := u.Query()
	for _, k := range secretParams {
		for key := range q {
			if strings.EqualFold(key, k) {
				q[key] = []string{"xxxxx"}
			}
		}
	}
	v.RawQuery = q.Encode()
	v.Fragment, v.RawFragment = "", ""
	return v.String()
}

// Redact masks the secrets of every postgres:// URL in s (config show,
// messages that quote one). A URL that does not parse is masked from its
// "://" to its last "@", so that no password survives a typo.
func Redact(s string) string {
	i := strings.Index(strings.ToLower(s), "postgres")
	if i < 0 {
		return s
	}
	end := strings.IndexAny(s[i:], " \t\n\"'`")
	if end < 0 {
		end = len(s) - i
	}
	raw := s[i : i+end]
	rest := Redact(s[i+end:])
	u, err := url.Parse(raw)
	switch {
	case err == nil && isPostgres(u):
		return s[:i] + shown(u) + rest
	case err != nil && strings.Contains(raw, "://") && strings.Contains(raw, "@"):
		from, to := strings.Index(raw, "://")+3, strings.LastIndex(raw, "@")
		if from <= to {
			return s[:i] + raw[:from] + "xxxxx" + raw[to:] + rest
		}
	}
	return s[:i+end] + rest
}

// Secrets lists the secret values a database URL carries (its password,
// password= and sslpassword= parameters), for scrubbing them out of
// text that a driver wrote.
func Secrets(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil {
		return nil
	}
	var out []string
	if u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			out = append(out, pw)
		}
	}
	for key, vs := range u.Query() {
		for _, k := range secretParams {
			if strings.EqualFold(key, k) {
				for _, v := range vs {
					if v != "" {
						out = append(out, v)
					}
				}
			}
		}
	}
	return out
}
