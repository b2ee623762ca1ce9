// Package shellquote quotes words for a POSIX shell: the commands cpm runs
// on backup servers over ssh (under the fence), rsync's --rsync-path and
// -e, and the hook scripts cpm writes into repositories. Nothing a client
// sends ever reaches a shell; these are operator-given paths and names,
// quoted so that a space or a quote in them stays one word.
package shellquote

import (
	"regexp"
	"strings"
)

// safe needs no quoting in a POSIX shell.
var safe = regexp.MustCompile(`^[A-Za-z0-9_./:=@,+-]+$`)

// Quote quotes s for the shell, leaving a word that needs no quoting as
// it is (commands stay readable in logs).
func Quote(s string) string {
	if safe.MatchString(s) {
		return s
	}
	return Always(s)
}

// Always quotes s in single quotes whatever it holds. Hook scripts use
// it: their bytes are compared with what cpm would write (repos.Repair),
// so their form must not depend on the path.
func Always(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
