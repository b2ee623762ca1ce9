package admin

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"cpm/internal/names"
	"cpm/internal/printable"
	"cpm/internal/store"
	"cpm/internal/token"
)

// DefaultTokenExpiry is how long a user's token lives unless token create
// says otherwise: long enough for a CI job's secret, short enough that a
// forgotten one does not work for ever (what GitHub and GitLab do too).
const DefaultTokenExpiry = "90d"

// maxTokenName bounds a token's name, which token list shows.
const maxTokenName = 100

// NewToken is what token create asks for.
type NewToken struct {
	User     string
	Name     string
	Expires  string   // "90d", "12h", "never"; "" for DefaultTokenExpiry
	Repos    []string // ORG/REPO; none for every repository of the user
	ReadOnly bool
}

// ParseExpiry reads --expires: a positive Go duration ("12h", "30m") or
// a number of days ("90d"), or "never".
func ParseExpiry(s string) (time.Duration, error) {
	if s == "never" {
		return 0, nil
	}
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int64
		n, err = strconv.ParseInt(days, 10, 64)
		if err == nil && n > 0 && n <= 100*365 {
			d = time.Duration(n) * 24 * time.Hour
		} else if err == nil {
			d = -1
		}
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("invalid --expires %q: want a positive duration such as 90d or 12h, or never", printable.Cut(s, 40))
	}
	return d, nil
}

func checkTokenName(name string) error {
	if name == "" || len(name) > maxTokenName || printable.Line(name) != name {
		return fmt.Errorf("invalid token name %q: one line of at most %d characters", printable.Cut(name, maxTokenName), maxTokenName)
	}
	return nil
}

// CreateToken makes a user's access token and returns its secret, which
// exists nowhere else: only its hash is stored.
func (s *Service) CreateToken(ctx context.Context, req NewToken) (string, store.Token, error) {
	if err := checkTokenName(req.Name); err != nil {
		return "", store.Token{}, err
	}
	if req.Expires == "" {
		req.Expires = DefaultTokenExpiry
	}
	life, err := ParseExpiry(req.Expires)
	if err != nil {
		return "", store.Token{}, err
	}
	u, err := s.Store.UserByName(ctx, req.User)
	if err != nil {
		return "", store.Token{}, err
	}
	n := store.NewToken{UserID: u.ID, Name: req.Name, ReadOnly: req.ReadOnly, Kind: store.TokenUser}
	if life > 0 {
		n.ExpiresAt = s.Now().Add(life)
	}
	for _, path := range req.Repos {
		rp, err := names.ParseRepoPath(path)
		if err != nil {
			return "", store.Token{}, err
		}
		r, err := s.Store.Repo(ctx, rp.Org, rp.Repo)
		if err != nil {
			return "", store.Token{}, err
		}
		n.RepoIDs = append(n.RepoIDs, r.ID)
	}
	return s.storeToken(ctx, n)
}

// CreateDeployToken makes a token bound to one repository, read-only
// unless write; it does not expire, like a deploy key.
func (s *Service) CreateDeployToken(ctx context.Context, path, name string, write bool) (string, store.Token, error) {
	if err := checkTokenName(name); err != nil {
		return "", store.Token{}, err
	}
	rp, err := names.ParseRepoPath(path)
	if err != nil {
		return "", store.Token{}, err
	}
	r, err := s.Store.Repo(ctx, rp.Org, rp.Repo)
	if err != nil {
		return "", store.Token{}, err
	}
	return s.storeToken(ctx, store.NewToken{RepoID: r.ID, Name: name, ReadOnly: !write, Kind: store.TokenDeploy})
}

func (s *Service) storeToken(ctx context.Context, n store.NewToken) (string, store.Token, error) {
	secret, hash, err := token.New()
	if err != nil {
		return "", store.Token{}, err
	}
	n.Hash = hash
	t, err := s.Store.CreateToken(ctx, s.Actor, n)
	if err != nil {
		return "", store.Token{}, err
	}
	return secret, t, nil
}

// Tokens lists the user and deploy tokens, of one user unless user is "".
func (s *Service) Tokens(ctx context.Context, user string) ([]store.Token, error) {
	return s.Store.Tokens(ctx, user)
}

// RevokeToken deletes a token by its id (as token list shows it).
func (s *Service) RevokeToken(ctx context.Context, id string) (store.Token, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 {
		return store.Token{}, fmt.Errorf("invalid token id %q: token list shows the ids", printable.Cut(id, 40))
	}
	t, err := s.Store.RevokeToken(ctx, s.Actor, n)
	if errors.Is(err, store.ErrNotFound) {
		return store.Token{}, fmt.Errorf("token %d %w", n, store.ErrNotFound)
	}
	return t, err
}
