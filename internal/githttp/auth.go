package githttp

import (
	"errors"
	"net/http"
	"strings"

	"cpm/internal/access"
	"cpm/internal/clientaddr"
	"cpm/internal/gateway"
)

// maxToken bounds a credential: cpm's tokens are far shorter.
const maxToken = 256

// remoteAddr is the client's address: the connection's (after a PROXY
// header, which names the client itself), or a trusted reverse proxy's
// forwarded-for.
func (h *Handler) remoteAddr(r *http.Request) (string, error) {
	if clientaddr.ViaProxyProtocol(r.Context()) {
		return r.RemoteAddr, nil
	}
	return clientaddr.FromHeaders(r.RemoteAddr, r.Header, h.ProxyAllow, h.ForwardedHeader)
}

// authenticated runs serve with the request's identity and token: no
// credentials is anonymous; Basic (any user name, the token as the
// password) or Bearer is the token's identity. A credential that names
// no valid token gets 401, and counts against the client's address; once
// that address spent its failures, a failure gets 429. Only failures are
// limited: a valid token is served whatever its address did before (a
// CI runner behind one NAT with a colleague's typo).
func (h *Handler) authenticated(w http.ResponseWriter, r *http.Request, remote string, serve func(access.Identity, string)) {
	secret, given, ok := credential(r)
	if !given {
		serve(access.Anonymous, "")
		return
	}
	if ok && h.Tokens != nil {
		id, err := h.Tokens.IdentifyToken(r.Context(), secret)
		switch {
		case err == nil:
			serve(id, secret)
			return
		case !unknownToken(err):
			h.Log.Error().Err(err).Str("remote", remote).Msg("identify token")
			h.plain(w, r, remote, http.StatusServiceUnavailable, "cpm: internal error; try again later\n")
			return
		}
	}
	addr := remote // the limiter counts it by authlimit.Key
	if h.Limiter != nil && !h.Limiter.Allow(addr) {
		w.Header().Set("Retry-After", "60")
		h.plain(w, r, remote, http.StatusTooManyRequests, "cpm: too many failed authentications; try again later\n")
		return
	}
	if h.Limiter != nil {
		h.Limiter.Failed(addr)
	}
	w.Header().Set("WWW-Authenticate", gateway.HTTPChallenge)
	h.plain(w, r, remote, http.StatusUnauthorized, "cpm: authentication failed: the access token is not valid\n")
}

// unknownToken tells a token that is not (or no longer) valid from a
// failure to look it up.
func unknownToken(err error) bool { return errors.Is(err, access.ErrUnknownToken) }

// credential is the token the request carries: given says whether it
// carries an Authorization header at all, ok whether that header is a
// well-formed Basic or Bearer credential.
func credential(r *http.Request) (secret string, given, ok bool) {
	v := r.Header.Get("Authorization")
	if v == "" {
		return "", false, false
	}
	if _, pass, isBasic := r.BasicAuth(); isBasic {
		secret = pass
	} else if scheme, tok, found := strings.Cut(v, " "); found && strings.EqualFold(scheme, "Bearer") {
		secret = strings.TrimSpace(tok)
	}
	return secret, true, secret != "" && len(secret) <= maxToken && printableASCII(secret)
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
