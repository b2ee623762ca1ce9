package gitservice

import "fmt"

// PktLine frames s as one pkt-line of git's protocol: its length,
// the four hex digits included, then s.
func PktLine(s string) []byte {
	return fmt.Appendf(nil, "%04x%s", len(s)+4, s)
}

// Flush is the flush-pkt that ends a section.
const Flush = "0000"
