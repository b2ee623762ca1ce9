package main

import (
	"fmt"
	"strconv"
	"time"

	"cpm/internal/admin"
)

type nodeCmd struct {
	List   nodeListCmd   `cmd:"" help:"List the nodes of this cluster: address, state, last heartbeat, primaries and replicas."`
	Drain  nodeDrainCmd  `cmd:"" help:"Move every repository a node is primary of to another node, with no failed push, and put nothing new there."`
	Remove nodeRemoveCmd `cmd:"" help:"Delete a node from the cluster; refused while it is a primary or holds the only copy of a push."`
}

type nodeDrainCmd struct {
	Name string `arg:"" name:"NAME" help:"Node to drain."`
	JSON bool   `name:"json" help:"Print JSON."`
}

func (c nodeDrainCmd) Run(e *env, svc *admin.Service) error {
	res, err := svc.DrainNode(e.ctx, c.Name, admin.MoveWait)
	if c.JSON && err == nil {
		return printJSON(e.stdout, res)
	}
	for _, m := range res.Moved {
		fmt.Fprintf(e.stdout, "moved %s\n", m)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "node %s is draining; it is primary of nothing now\n", c.Name)
	return nil
}

type nodeRemoveCmd struct {
	Name string `arg:"" name:"NAME" help:"Node to remove."`
}

func (c nodeRemoveCmd) Run(e *env, svc *admin.Service) error {
	added, err := svc.RemoveNode(e.ctx, c.Name, e.conf.Replicas, e.conf.Lease)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "removed node %s; %d replicas placed on other nodes\n", c.Name, added)
	return nil
}

type repoMoveCmd struct {
	Repo string `arg:"" name:"ORG/REPO" help:"Repository to move."`
	To   string `name:"to" required:"" placeholder:"NODE" help:"Node that becomes its primary."`
}

func (c repoMoveCmd) Run(e *env, svc *admin.Service) error {
	already, err := svc.MoveRepo(e.ctx, c.Repo, c.To, admin.MoveWait)
	if err != nil {
		return err
	}
	if already {
		fmt.Fprintf(e.stdout, "%s: %s is its primary already\n", c.Repo, c.To)
		return nil
	}
	fmt.Fprintf(e.stdout, "moved %s to %s\n", c.Repo, c.To)
	return nil
}

type nodeListCmd struct {
	JSON bool `name:"json" help:"Print a JSON array."`
}

func (c nodeListCmd) Run(e *env, svc *admin.Service) error {
	nodes, err := svc.Nodes(e.ctx)
	if err != nil {
		return err
	}
	if c.JSON {
		return printJSON(e.stdout, nodes)
	}
	if len(nodes) == 0 {
		fmt.Fprintln(e.stdout, "no nodes: this installation is not a cluster (cpm-admin init --database postgres://… --node-name N --advertise HOST:PORT makes one)")
		return nil
	}
	rows := make([][]string, 0, len(nodes))
	for _, n := range nodes {
		hb := "never"
		if n.Heartbeat != nil {
			hb = n.Heartbeat.Format(time.RFC3339) + " (" + time.Since(*n.Heartbeat).Round(time.Second).String() + " ago)"
		}
		rows = append(rows, []string{n.Name, n.Address, n.State, hb, strconv.Itoa(n.Primaries), strconv.Itoa(n.Replicas)})
	}
	return printTable(e.stdout, []string{"NAME", "ADDRESS", "STATE", "HEARTBEAT", "PRIMARIES", "REPLICAS"}, rows)
}

type repoWhereCmd struct {
	Repo string `arg:"" name:"ORG/REPO" help:"Repository."`
	JSON bool   `name:"json" help:"Print JSON."`
}

func (c repoWhereCmd) Run(e *env, svc *admin.Service) error {
	w, err := svc.Where(e.ctx, c.Repo)
	if err != nil {
		return err
	}
	if c.JSON {
		return printJSON(e.stdout, w)
	}
	if w.Primary == "" {
		fmt.Fprintf(e.stdout, "%s: generation %d; not in a cluster (served by this installation alone)\n", w.Repo, w.Generation)
		return nil
	}
	fmt.Fprintf(e.stdout, "%s: primary %s, generation %d, epoch %d\n", w.Repo, w.Primary, w.Generation, w.Epoch)
	if w.MoveTo != "" {
		fmt.Fprintf(e.stdout, "moving to %s\n", w.MoveTo)
	}
	for _, d := range w.Diverged {
		fmt.Fprintf(e.stdout, "kept from %s (before epoch %d): %s at %s, as %s\n", d.Node, d.Epoch, d.Ref, d.Object, d.SavedAs())
	}
	rows := make([][]string, 0, len(w.Replicas))
	for _, r := range w.Replicas {
		rows = append(rows, []string{r.Node, strconv.FormatInt(r.Generation, 10),
			(time.Duration(r.LagSeconds * float64(time.Second))).Round(time.Millisecond).String(), r.State})
	}
	return printTable(e.stdout, []string{"REPLICA", "GENERATION", "LAG", "STATE"}, rows)
}
