-- A neighbour approved to forward pushes to this node's repositories from
-- its replicas, performed here as the user who pushed there.
ALTER TABLE servers ADD COLUMN forward_pushes INTEGER NOT NULL DEFAULT 0 CHECK (forward_pushes IN (0, 1));
