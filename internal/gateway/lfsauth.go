package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"cpm/internal/access"
	"cpm/internal/authz"
	"cpm/internal/command"
	"cpm/internal/names"
	"cpm/internal/store"
	"cpm/internal/token"
)

// LFSTokens makes the short-lived tokens git-lfs-authenticate hands out:
// for id, on repo alone, read-only unless write.
type LFSTokens interface {
	LFSToken(ctx context.Context, id access.Identity, repo names.RepoPath, write bool, ttl time.Duration) (string, error)
}

// lfsTokenTTL is how long a git-lfs-authenticate token lives; git-lfs
// asks for a new one when it runs out.
const lfsTokenTTL = 10 * time.Minute

// lfsAuth is git-lfs-authenticate's answer, as git-lfs reads it.
type lfsAuth struct {
	Href      string            `json:"href"`
	Header    map[string]string `json:"header"`
	ExpiresIn int               `json:"expires_in"`
}

// lfsAuthenticate answers git-lfs-authenticate ORG/REPO upload|download:
// where the LFS HTTP API of the repository is and a token for it, after
// the same decision as git-lfs-transfer (an upload needs push access and
// may create the repository; a reader asking for an upload gets a
// read-only token, whose uploads the API refuses with the reason). Off
// (a refusal pointing at git-lfs-transfer) unless the HTTP server is on.
func (g *Gateway) lfsAuthenticate(ctx context.Context, s Session, cmd command.Command) error {
	if g.HTTPURLUnsafe != nil {
		return refuse("git-lfs-authenticate: %v", g.HTTPURLUnsafe)
	}
	if g.HTTPURL == "" || g.LFSTokens == nil {
		// git-lfs asks for HTTP credentials only when the pure ssh
		// transfer failed, or when lfs.url points it at HTTP.
		return refuse("git-lfs-authenticate: cpm has no HTTP endpoint; it serves Git LFS over ssh (git-lfs-transfer, git-lfs 3.0 or newer); unset lfs.url")
	}
	transfer := command.Command{Verb: command.LFSTransfer, Repo: cmd.Repo, Operation: cmd.Operation}
	grant, err := g.authorize(ctx, s, transfer)
	grant, noWrite, err := g.readOnlyLFS(ctx, s, transfer, grant, err)
	if err != nil {
		return err
	}
	if s.Identity.UserID == 0 && !s.Identity.IsDeployKey() {
		// A key an origin registered reads that origin's replicas; no
		// token of this node's speaks for it.
		return refuse("git-lfs-authenticate: tokens are made for this node's users and deploy keys; use git-lfs-transfer")
	}
	if grant.Origin != "" {
		return refuse("git-lfs-authenticate: %s is a replica of %s's; this node serves its LFS objects over ssh only (git-lfs-transfer)", grant.Repo, grant.Origin)
	}
	write := cmd.Operation == "upload" && noWrite == "" && grant.Perm >= authz.PermWrite
	tok, err := g.LFSTokens.LFSToken(ctx, s.Identity, grant.Repo, write, lfsTokenTTL)
	if errors.Is(err, store.ErrTooManyTokens) {
		return refuse("git-lfs-authenticate: %v", store.ErrTooManyTokens)
	}
	if err != nil {
		return &failure{line: "cpm: internal error; try again later", err: fmt.Errorf("lfs token for %s: %w", grant.Repo, err)}
	}
	return json.NewEncoder(s.Stdout).Encode(lfsAuth{
		Href:      LFSHref(g.HTTPURL, grant.Repo),
		Header:    map[string]string{"Authorization": "Bearer " + tok},
		ExpiresIn: int(lfsTokenTTL / time.Second),
	})
}

// LFSHref is the LFS HTTP API's address of repo under the server's
// public base URL.
func LFSHref(base string, repo names.RepoPath) string {
	return strings.TrimRight(base, "/") + "/" + repo.String() + ".git/info/lfs"
}

// StoreTokens makes git-lfs-authenticate's tokens in the store: of kind
// lfs (token list leaves them out; each one made clears the expired),
// for the user on the one repository, or for a deploy key's repository.
type StoreTokens struct{ Store *store.Store }

// LFSToken implements LFSTokens.
func (t StoreTokens) LFSToken(ctx context.Context, id access.Identity, repo names.RepoPath, write bool, ttl time.Duration) (string, error) {
	secret, hash, err := token.New()
	if err != nil {
		return "", err
	}
	nt := store.NewToken{Name: "git-lfs-authenticate " + repo.String(), Hash: hash, ReadOnly: !write,
		ExpiresAt: time.Now().Add(ttl), Kind: store.TokenLFS, KeyID: id.KeyID}
	if id.IsDeployKey() {
		nt.RepoID = id.RepoID
	} else {
		r, err := t.Store.Repo(ctx, repo.Org, repo.Repo)
		if err != nil {
			return "", fmt.Errorf("read %s: %w", repo, err)
		}
		nt.UserID, nt.RepoIDs = id.UserID, []int64{r.ID}
	}
	if _, err := t.Store.CreateToken(ctx, store.Actor{Name: id.Name()}, nt); err != nil {
		return "", err
	}
	return secret, nil
}
