package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// Placement is where one repository lives among the nodes of a cluster,
// as one node sees it.
type Placement struct {
	RepoID int64
	// Org and Name are the repository's names as stored (their case).
	Org, Name string
	// Primary is the node that takes the repository's writes, its ID and
	// Name only (ServerByName has the rest, for the one caller that
	// connects to it); its ID is 0 outside a cluster (or for a repository
	// not yet placed), where every request is served by the node that has
	// it.
	Primary Server
	// Generation is bumped by every accepted push; Epoch by every change
	// of primary (an election or a handover).
	Generation, Epoch int64
	// Local is the generation this node's copy was last verified at: the
	// repository's own on its primary, -1 where this node holds no copy.
	Local int64
}

// Clustered reports whether the repository has a primary node.
func (p Placement) Clustered() bool { return p.Primary.ID != 0 }

// PrimaryIs reports whether the node named name is the repository's
// primary (names compare without case, as everywhere).
func (p Placement) PrimaryIs(name string) bool {
	return p.Clustered() && strings.EqualFold(p.Primary.Name, name)
}

// Current reports whether the node's copy holds every accepted push.
func (p Placement) Current() bool { return p.Local >= p.Generation }

// Placement returns where ORG/REPO lives, as the node named self sees it
// (self "" outside a cluster). ErrNotFound: no such repository.
func (s *Store) Placement(ctx context.Context, self, org, repo string) (Placement, error) {
	var p Placement
	var primaryID sql.NullInt64
	var primaryName string
	// One read: the repository, its primary's name, and self's replica
	// row if self holds one (repo_generation of that job).
	err := s.db.QueryRowContext(ctx, `
		SELECT r.id, o.name, r.name, r.primary_id, coalesce(p.name, ''), r.generation, r.epoch,
		       coalesce((SELECT j.repo_generation FROM replication_jobs j JOIN servers me ON me.id = j.server_id
		                 WHERE j.repo_id = r.id AND me.name = ? AND me.role = 'node'), -1)
		FROM repos r JOIN orgs o ON o.id = r.org_id LEFT JOIN servers p ON p.id = r.primary_id
		WHERE o.name = ? AND r.name = ?`, self, org, repo).
		Scan(&p.RepoID, &p.Org, &p.Name, &primaryID, &primaryName, &p.Generation, &p.Epoch, &p.Local)
	if errors.Is(err, sql.ErrNoRows) {
		return Placement{}, notFound("repository", org+"/"+repo)
	}
	if err != nil {
		return Placement{}, fmt.Errorf("placement of %s/%s: %w", org, repo, err)
	}
	if !primaryID.Valid {
		p.Local = p.Generation
		return p, nil
	}
	if primaryName != "" && strings.EqualFold(primaryName, self) {
		p.Local = p.Generation
	}
	p.Primary = Server{ID: primaryID.Int64, Name: primaryName, Role: Node}
	return p, nil
}
