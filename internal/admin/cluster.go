package admin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"cpm/internal/atomicfile"
	"cpm/internal/datadir"
	"cpm/internal/names"
	"cpm/internal/pins"
	"cpm/internal/remote"
	"cpm/internal/replkey"
	"cpm/internal/sshkey"
	"cpm/internal/store"
)

// ClusterSpec is what `init --node-name N --advertise [USER@]HOST:PORT` asks:
// make this data directory node N of the cluster on its database.
type ClusterSpec struct {
	NodeName string
	// Advertise is where the other nodes reach this node's ssh, and as
	// which account (USER@, default cpm: the embedded server takes any;
	// OpenSSH's sshd wants the account cpm runs as); "" when init runs
	// again on a node (its address stays).
	Advertise string
	// Replicas and Lease are the settings placement follows.
	Replicas int
	Lease    time.Duration
}

// Joined is what init tells the operator about the node it made.
type Joined struct {
	Node          store.Server
	HostKey       string // the cluster's host key fingerprint
	ReplicasAdded int
}

// ClusterInit reports whether init is to make (or keep) dir a cluster
// node, and checks the spec before anything is written: a node name like
// a server name, an address HOST:PORT, PostgreSQL, and no other name for
// a data directory that is a node already. It fills in a recorded name.
func ClusterInit(dir datadir.Dir, database string, spec *ClusterSpec) (bool, error) {
	recorded, err := dir.NodeName()
	if err != nil {
		return false, err
	}
	if spec.Advertise == "" && recorded == "" {
		return false, nil // a single installation: --node-name is the name neighbours see
	}
	if spec.NodeName == "" {
		spec.NodeName = recorded
	}
	if spec.NodeName == "" {
		return false, errors.New("init --advertise: give this node's name with --node-name")
	}
	if err := names.Check(names.User, spec.NodeName); err != nil {
		return false, fmt.Errorf("node name: %w", err)
	}
	if recorded != "" && !strings.EqualFold(recorded, spec.NodeName) {
		return false, fmt.Errorf("this data directory is node %q of its cluster (%s); it cannot become %q", recorded, dir.NodeFile(), spec.NodeName)
	}
	if spec.Advertise != "" {
		if _, err := parseAdvertise(spec.Advertise); err != nil {
			return false, err
		}
	}
	if database == "" {
		if database, err = dir.Recorded(); err != nil {
			return false, err
		}
	}
	if database == "" {
		return false, errors.New("init --node-name --advertise: a cluster needs PostgreSQL: every node on one database (--database postgres://…)")
	}
	return true, nil
}

// advertised is where the other nodes reach a node's ssh.
type advertised struct {
	User, Host string
	Port       int
}

// parseAdvertise splits [USER@]HOST:PORT (the account store.DefaultNodeUser
// unless named) and checks it as every ssh target is checked.
func parseAdvertise(a string) (advertised, error) {
	user, hostPort, found := strings.Cut(a, "@")
	if !found {
		user, hostPort = store.DefaultNodeUser, a
	}
	host, p, err := net.SplitHostPort(hostPort)
	if err != nil {
		return advertised{}, fmt.Errorf("--advertise %q: want [USER@]HOST:PORT, where the other nodes reach this node's ssh", a)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return advertised{}, fmt.Errorf("--advertise %q: bad port", a)
	}
	if err := remote.CheckTarget(remote.Target{Host: host, Port: port, User: user, Path: "/"}); err != nil {
		return advertised{}, fmt.Errorf("--advertise %q: %w", a, err)
	}
	return advertised{User: user, Host: host, Port: port}, nil
}

// JoinCluster makes dir node spec.NodeName of the cluster on st's
// database: its row (address, replication key), the cluster's host key
// in DATA/ssh_host_ed25519_key (this node's own becomes the cluster's if
// it is the first), DATA/node, replicas for repositories short of them,
// and the pins of every node. Run again, it changes nothing but the
// address and what placement owes.
func JoinCluster(ctx context.Context, st *store.Store, dir datadir.Dir, actor store.Actor, spec ClusterSpec) (Joined, error) {
	ns := store.NodeSpec{Name: spec.NodeName}
	if spec.Advertise == "" {
		old, err := st.NodeByName(ctx, spec.NodeName)
		if err != nil {
			return Joined{}, fmt.Errorf("init: node %s has no address yet: give --advertise HOST:PORT (%w)", spec.NodeName, err)
		}
		ns.User, ns.Host, ns.Port = old.User, old.Host, old.Port
	} else {
		a, _ := parseAdvertise(spec.Advertise)
		ns.User, ns.Host, ns.Port = a.User, a.Host, a.Port
	}
	pub, err := replkey.PublicKey(dir)
	if err != nil {
		return Joined{}, err
	}
	if ns.PeerKey, err = remote.ParseHostKey(pub); err != nil {
		return Joined{}, fmt.Errorf("replication key: %w", err)
	}
	ns.PeerFingerprint = remote.Fingerprint(ns.PeerKey)
	if ns.HostKeyPEM, ns.HostKey, err = hostKeyCandidate(dir.HostKey()); err != nil {
		return Joined{}, err
	}
	srv, keyPEM, err := st.JoinCluster(ctx, actor, ns)
	if err != nil {
		return Joined{}, err
	}
	if err := writeHostKey(dir.HostKey(), keyPEM, srv.HostKey); err != nil {
		return Joined{}, err
	}
	if err := atomicfile.Write(dir.NodeFile(), []byte(srv.Name+"\n"), 0o644); err != nil {
		return Joined{}, fmt.Errorf("record node name: %w", err)
	}
	added, err := st.PlaceRepos(ctx, actor, store.Placing{Node: srv.Name, Replicas: spec.Replicas, Lease: spec.Lease})
	if err != nil {
		return Joined{}, err
	}
	if err := pins.Write(ctx, st, dir); err != nil {
		return Joined{}, err
	}
	return Joined{Node: srv, HostKey: remote.Fingerprint(srv.HostKey), ReplicasAdded: added}, nil
}

// hostKeyCandidate is the host key this node offers the cluster: the one
// it already presents (a single installation becoming the first node
// keeps its clients' pin), else a new ed25519 key.
func hostKeyCandidate(path string) (string, string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		signer, perr := ssh.ParsePrivateKey(b)
		if perr != nil {
			return "", "", fmt.Errorf("host key %s: %w", path, perr)
		}
		return string(b), publicLine(signer.PublicKey()), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", "", fmt.Errorf("host key: %w", err)
	}
	privPEM, sshPub, err := sshkey.NewEd25519("cpm cluster host key")
	if err != nil {
		return "", "", fmt.Errorf("cluster host key: %w", err)
	}
	return string(privPEM), publicLine(sshPub), nil
}

func publicLine(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// writeHostKey puts the cluster's host key where the embedded SSH server
// loads it (0600) with its public half beside it (0644), checking first
// that the two belong together.
func writeHostKey(path, keyPEM, pub string) error {
	signer, err := ssh.ParsePrivateKey([]byte(keyPEM))
	if err != nil {
		return fmt.Errorf("cluster host key from the database: %w", err)
	}
	if publicLine(signer.PublicKey()) != pub {
		return errors.New("cluster host key: the database's private and public keys differ")
	}
	if err := atomicfile.Write(path, []byte(keyPEM), 0o600); err != nil {
		return fmt.Errorf("write cluster host key: %w", err)
	}
	if err := atomicfile.Write(path+".pub", []byte(pub+"\n"), 0o644); err != nil {
		return fmt.Errorf("write cluster host key: %w", err)
	}
	return nil
}
