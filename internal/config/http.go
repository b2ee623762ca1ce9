package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// HTTP is the git over HTTP(S) listener's settings.
type HTTP struct {
	Listen          string // "" when off
	TLSCert, TLSKey string // both or neither: HTTPS
	// URL is http_url as given ("" for the default, see BaseURL).
	URL string
	// ForwardedHeader is the one header (x-forwarded-for or forwarded)
	// whose rightmost hop from a proxy in proxy_allow names the client.
	ForwardedHeader string
}

// TLS reports whether the listener serves HTTPS.
func (h HTTP) TLS() bool { return h.TLSCert != "" }

// BaseURL is the public URL of the listener without a trailing slash,
// for what is written without a request at hand: http_url, or one made
// of http_listen (a wildcard host as localhost). "" when HTTP is off.
func (h HTTP) BaseURL() string {
	if h.URL != "" {
		return h.URL
	}
	if h.Listen == "" {
		return ""
	}
	host, port, _ := net.SplitHostPort(h.Listen)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	scheme := "http"
	if h.TLS() {
		scheme = "https"
	}
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		return scheme + "://" + host
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// TokenURL is the base URL that Git LFS may hand a token for (in
// git-lfs-authenticate's href and the batch API's actions): http_url, or
// one made of a specific http_listen address. Never one guessed: a
// wildcard listen's host is not an address the client chose, and behind
// a proxy (proxied: proxy_allow is set) a plain HTTP socket's address is
// not what the client used (a proxy that ends TLS would have the token
// sent in cleartext to the backend); then http_url must be set. A TLS
// socket's own https address is this server whoever stands in front.
func (h HTTP) TokenURL(proxied bool) (string, error) {
	if h.URL != "" || h.Listen == "" {
		return h.URL, nil
	}
	host, _, _ := net.SplitHostPort(h.Listen)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return "", fmt.Errorf("http_listen %s is a wildcard address; set http_url to the URL clients use to serve Git LFS over HTTP", h.Listen)
	}
	if proxied && !h.TLS() {
		return "", errors.New("proxy_allow is set and http_listen serves plain HTTP; set http_url to the URL clients use to serve Git LFS over HTTP")
	}
	return h.BaseURL(), nil
}

func (h HTTP) check() error {
	if (h.TLSCert == "") != (h.TLSKey == "") {
		return errors.New("config: tls_cert and tls_key go together")
	}
	return nil
}

// baseURL takes an http:// or https:// URL with a host and at most a
// path (no user, query or fragment), and keeps it without a trailing
// slash.
func baseURL(dst *string, v string) error {
	if v == "" {
		*dst = ""
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || strings.ContainsAny(v, " \t\r\n\"'<>\\") {
		return fmt.Errorf("want a URL such as https://git.example.com")
	}
	*dst = strings.TrimRight(v, "/")
	return nil
}
