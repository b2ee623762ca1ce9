package main

import (
	"fmt"
	"strconv"
	"time"

	"cpm/internal/admin"
)

type nodeCmd struct {
	List nodeListCmd `cmd:"" help:"List the nodes of this cluster: address, state, last heartbeat, primaries and replicas."`
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
	rows := make([][]string, 0, len(w.Replicas))
	for _, r := range w.Replicas {
		rows = append(rows, []string{r.Node, strconv.FormatInt(r.Generation, 10),
			(time.Duration(r.LagSeconds * float64(time.Second))).Round(time.Millisecond).String(), r.State})
	}
	return printTable(e.stdout, []string{"REPLICA", "GENERATION", "LAG", "STATE"}, rows)
}
