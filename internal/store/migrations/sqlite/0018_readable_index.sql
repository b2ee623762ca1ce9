-- cpm schema, version 18: the public repositories by an index of their
-- own, so that listing what one user may read (`info`) picks the
-- repositories of their organisations, their grants and the public ones
-- by index, at a cost that follows the answer, not the site's size.
CREATE INDEX repos_public ON repos(id) WHERE public = 1;
