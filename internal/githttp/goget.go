package githttp

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"

	"cpm/internal/access"
	"cpm/internal/authz"
)

// goGet answers `go get HOST/ORG/REPO[/PKG…]`'s ?go-get=1 with the
// go-import (and go-source) meta tags that name the repository's HTTPS
// URL, for a repository the caller may read; anything else gets the
// same answer as a missing repository over git (no oracle). go sends
// credentials only from .netrc, so a private module needs a token there.
func (h *Handler) goGet(w http.ResponseWriter, r *http.Request, remote string, rt route, id access.Identity) {
	if _, err := h.Gateway.Access.Authorize(r.Context(), id, rt.repo, authz.Read); err != nil {
		line := "cpm: " + err.Error() + "\n"
		if access.OutcomeOf(err) == access.Failed {
			// A fault's cause is for the log; the client gets the 500.
			h.Log.Error().Err(err).Str("transport", "http").Str("command", "go-get").Str("repo", rt.repo.String()).
				Str("remote", remote).Msg("http")
			line = ""
		}
		h.refuse(w, r, remote, id, err, line)
		return
	}
	base, err := url.Parse(h.BaseURL)
	if err != nil || base.Host == "" {
		h.plain(w, r, remote, http.StatusNotFound, "cpm: not found (http_url is not set)\n")
		return
	}
	// The import path is the module's name as the client asked for it:
	// the repository as spelt in the request, under this server's host.
	prefix := base.Host + strings.TrimSuffix(base.Path, "/") + "/" + rt.repo.String()
	repoURL := h.BaseURL + "/" + rt.repo.String() + ".git"
	e := html.EscapeString
	page := fmt.Sprintf(`<!DOCTYPE html>
<html><head>
<meta name="go-import" content="%s git %s">
<meta name="go-source" content="%s %s %s %s">
</head><body>go get %s</body></html>
`, e(prefix), e(repoURL), e(prefix), e(repoURL), "_", "_", e(prefix))
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(page))
	h.Log.Info().Str("transport", "http").Str("command", "go-get").Str("user", id.Name()).
		Str("repo", rt.repo.String()).Str("remote", remote).Int("status", http.StatusOK).Msg("http")
}
