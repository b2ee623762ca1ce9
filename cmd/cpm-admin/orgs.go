package main

import (
	"fmt"
	"strconv"

	"cpm/internal/admin"
)

type orgCmd struct {
	Create       orgCreateCmd       `cmd:"" help:"Create an organisation."`
	List         orgListCmd         `cmd:"" help:"List organisations."`
	Delete       orgDeleteCmd       `cmd:"" help:"Delete an organisation."`
	AddMember    orgAddMemberCmd    `cmd:"" name:"add-member" help:"Add a member or change their role."`
	RemoveMember orgRemoveMemberCmd `cmd:"" name:"remove-member" help:"Remove a member."`
	Members      orgMembersCmd      `cmd:"" help:"List an organisation's members."`
}

type orgCreateCmd struct {
	Name  string `arg:"" help:"Organisation name."`
	Owner string `placeholder:"USER" help:"Make USER its first owner."`
}

func (c orgCreateCmd) Run(e *env, svc *admin.Service) error {
	o, err := svc.CreateOrg(e.ctx, c.Name, c.Owner)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "created organisation %s\n", o.Name)
	return nil
}

type orgListCmd struct {
	JSON bool `name:"json" help:"Print a JSON array."`
}

func (c orgListCmd) Run(e *env, svc *admin.Service) error {
	orgs, err := svc.Orgs(e.ctx)
	if err != nil {
		return err
	}
	if c.JSON {
		return printJSON(e.stdout, orgs)
	}
	rows := make([][]string, 0, len(orgs))
	for _, o := range orgs {
		rows = append(rows, []string{o.Name, strconv.Itoa(o.Repos), strconv.Itoa(o.Members), o.CreatedAt.Format("2006-01-02")})
	}
	return printTable(e.stdout, []string{"NAME", "REPOS", "MEMBERS", "CREATED"}, rows)
}

type orgDeleteCmd struct {
	Name  string `arg:"" help:"Organisation name."`
	Force bool   `help:"Also delete its repositories (they are moved to the trash)."`
}

func (c orgDeleteCmd) Run(e *env, svc *admin.Service) error {
	moved, err := svc.DeleteOrg(e.ctx, c.Name, c.Force)
	if err != nil {
		return err
	}
	for _, t := range moved {
		if t.Path != "" {
			fmt.Fprintf(e.stdout, "moved %s to %s\n", t.Repo, t.Path)
		}
	}
	fmt.Fprintf(e.stdout, "deleted organisation %s\n", c.Name)
	return nil
}

type orgAddMemberCmd struct {
	Org  string `arg:"" help:"Organisation name."`
	User string `arg:"" help:"User name."`
	Role string `required:"" enum:"owner,admin,member" help:"owner, admin or member."`
}

func (c orgAddMemberCmd) Run(e *env, svc *admin.Service) error {
	if err := svc.SetMember(e.ctx, c.Org, c.User, c.Role); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s is now %s of %s\n", c.User, c.Role, c.Org)
	return nil
}

type orgRemoveMemberCmd struct {
	Org  string `arg:"" help:"Organisation name."`
	User string `arg:"" help:"User name."`
}

func (c orgRemoveMemberCmd) Run(e *env, svc *admin.Service) error {
	if err := svc.RemoveMember(e.ctx, c.Org, c.User); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "removed %s from %s\n", c.User, c.Org)
	return nil
}

type orgMembersCmd struct {
	Org  string `arg:"" help:"Organisation name."`
	JSON bool   `name:"json" help:"Print a JSON array."`
}

func (c orgMembersCmd) Run(e *env, svc *admin.Service) error {
	members, err := svc.Members(e.ctx, c.Org)
	if err != nil {
		return err
	}
	if c.JSON {
		return printJSON(e.stdout, members)
	}
	rows := make([][]string, 0, len(members))
	for _, m := range members {
		rows = append(rows, []string{m.User, m.Role})
	}
	return printTable(e.stdout, []string{"USER", "ROLE"}, rows)
}
