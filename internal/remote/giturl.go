package remote

import "net"

// GitURL is git's scp-like address of path on t (the port comes from the
// ssh options), an IPv6 host in brackets: without them git would take
// the host's first colon for the end of the host.
func GitURL(t Target, path string) string {
	host := t.Host
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		host = "[" + host + "]"
	}
	return t.User + "@" + host + ":" + path
}
