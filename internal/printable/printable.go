// Package printable makes text fit one line of a log, an error or a
// message back to a client. cpm's interface promises one-line errors
// (`cpm: …`), and text from outside (git's or ssh's stderr, a client's
// command) must not break a log line or reach a terminal as control
// sequences. Line is for cpm's own errors and a tool's output; Cut is for
// untrusted text that is also bounded in length.
package printable

import "strings"

// Line joins s into one line: every run of white space becomes one
// space, with none at either end, and other control characters are
// dropped.
func Line(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			if r == '\n' || r == '\r' || r == '\t' || r == '\v' || r == '\f' {
				return ' '
			}
			return -1
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// Cut makes untrusted text from a client fit one line of a log or of a
// message back: control characters become '?', and text longer than max
// bytes is cut there, with "…".
func Cut(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// Clip is Cut to 80 bytes: a client's name, id or path quoted in a
// one-line answer (Git LFS's, over either transport).
func Clip(s string) string { return Cut(s, 80) }
