// Package command parses the command line an ssh client asks cpm to run
// (SSH_ORIGINAL_COMMAND in forced-command mode, the exec request in the
// embedded server). Nothing is ever handed to a shell: the grammar is a
// fixed list of verbs, each with an exact number of arguments, and a
// repository path that must name ORG/REPO and nothing else.
package command

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"cpm/internal/names"
)

// MaxLen bounds a command line. The longest valid one is well under 200.
const MaxLen = 1024

// Verb is what the client asks for.
type Verb int

const (
	UploadPack    Verb = iota + 1 // git fetch, clone, ls-remote
	ReceivePack                   // git push
	UploadArchive                 // git archive --remote
	Whoami
	Info
	Merge // merge ORG/REPO SOURCE --into TARGET
	// Git LFS over ssh: the pure ssh transfer protocol, and the HTTP
	// credential helper, which cpm answers with a pointer to the former.
	LFSTransfer     // git-lfs-transfer ORG/REPO upload|download
	LFSAuthenticate // git-lfs-authenticate ORG/REPO upload|download

	// Between cpm nodes only: a neighbour delivering replicas. The
	// gateway runs these for an approved neighbour's replication key and
	// for no one else.
	PeerHello    // cpm-peer hello: node name and version
	PeerMeta     // cpm-peer meta: authorization metadata on stdin
	PeerPrepare  // cpm-peer prepare ORG/REPO: make room for a replica
	PeerRefs     // cpm-peer refs ORG/REPO: HEAD and refs, to verify
	PeerRsyncIn  // cpm-peer rsync-in ORG/REPO --server --daemon .
	PeerRsyncOut // cpm-peer rsync-out ORG/REPO --server --daemon .
	PeerWant     // cpm-peer want ORG/REPO: send me your ORG/REPO now
	PeerSpace    // cpm-peer space ORG/REPO: free space and object files, before a sync
	PeerRekey    // cpm-peer rekey: my new replication key on stdin
	PeerForward  // cpm-peer forward ORG/REPO FINGERPRINT: a push to my replica, made by that key
	// Between nodes of one cluster only: a user's session that another
	// node took, served here (the primary); a JSON header on stdin names
	// the session.
	PeerRelay // cpm-peer relay
	// Between nodes of one cluster only: the repository's primary reads
	// this node's own copy (a returning old primary's writes, kept
	// before the copy is replaced).
	PeerUploadPack // cpm-peer upload-pack ORG/REPO
	// Between nodes of one cluster only: a push that the primary writes
	// into this node's replica before it acknowledges it to its client
	// (git send-pack's --receive-pack), under the repository's epoch, as
	// its generation, ending in refs of that fingerprint.
	PeerReceivePack // cpm-peer receive-pack [--pack] EPOCH GENERATION FINGERPRINT ORG/REPO, or --serve
)

var verbNames = map[Verb]string{
	UploadPack:      "git-upload-pack",
	ReceivePack:     "git-receive-pack",
	UploadArchive:   "git-upload-archive",
	Whoami:          "whoami",
	Info:            "info",
	Merge:           "merge",
	LFSTransfer:     "git-lfs-transfer",
	LFSAuthenticate: "git-lfs-authenticate",
	PeerHello:       "cpm-peer hello",
	PeerMeta:        "cpm-peer meta",
	PeerPrepare:     "cpm-peer prepare",
	PeerRefs:        "cpm-peer refs",
	PeerRsyncIn:     "cpm-peer rsync-in",
	PeerRsyncOut:    "cpm-peer rsync-out",
	PeerWant:        "cpm-peer want",
	PeerSpace:       "cpm-peer space",
	PeerRekey:       "cpm-peer rekey",
	PeerForward:     "cpm-peer forward",
	PeerRelay:       "cpm-peer relay",
	PeerUploadPack:  "cpm-peer upload-pack",
	PeerReceivePack: "cpm-peer receive-pack",
}

func (v Verb) String() string { return verbNames[v] }

// IsPeer reports whether the verb is one that only other cpm nodes
// (neighbours, or nodes of the same cluster) may run.
func (v Verb) IsPeer() bool { return v >= PeerHello && v <= PeerReceivePack }

// IsGit reports whether the verb runs a git service on a repository.
func (v Verb) IsGit() bool { return v == UploadPack || v == ReceivePack || v == UploadArchive }

// Command is a parsed, validated command.
type Command struct {
	Verb Verb
	Repo names.RepoPath // git, merge and peer verbs
	// Merge only: full branch ref names (refs/heads/…).
	Source, Target string
	// LFS verbs only: "upload" or "download".
	Operation string
	// PeerForward only: the SHA256 fingerprint of the key that pushed.
	Key string
	// PeerReceivePack only: the repository's epoch and generation the
	// primary writes under, and the fingerprint (transfer.Fingerprint,
	// 64 hex digits) of the refs the replica must hold afterwards.
	Epoch, Generation int64
	Fingerprint       string
	// PeerReceivePack only: the primary sends ref updates and a pack
	// itself (peer.Receiver.ApplyPack), not git's send-pack protocol.
	Pack bool
	// PeerReceivePack only: a long-lived session of many such writes,
	// each a framed request that names its repository, epoch,
	// generation and fingerprint (peer.Receiver.ServeApply); no
	// arguments.
	Serve bool
}

// ErrInvalid is wrapped by every parse error.
var ErrInvalid = errors.New("invalid command")

// Parse parses a command line such as "git-upload-pack 'acme/web.git'".
func Parse(line string) (Command, error) {
	if len(line) > MaxLen {
		return Command{}, invalid("longer than %d bytes", MaxLen)
	}
	for i := 0; i < len(line); i++ {
		if c := line[i]; c < ' ' || c == 0x7f {
			return Command{}, invalid("control characters are not allowed")
		}
	}
	// Exactly single spaces between words: git sends nothing else, and a
	// strict split leaves no room for shell-style surprises.
	words := strings.Split(line, " ")
	if len(words) >= 2 && words[0] == "git" {
		// "git upload-pack 'x'" is the two-word form of "git-upload-pack 'x'".
		words = append([]string{"git-" + words[1]}, words[2:]...)
	}
	switch words[0] {
	case "whoami", "info":
		if len(words) != 1 {
			return Command{}, invalid("%s takes no arguments", words[0])
		}
		if words[0] == "whoami" {
			return Command{Verb: Whoami}, nil
		}
		return Command{Verb: Info}, nil
	case "git-upload-pack", "git-receive-pack", "git-upload-archive":
		if len(words) != 2 {
			return Command{}, invalid("%s takes exactly one repository path", words[0])
		}
		p, err := parsePath(words[1])
		if err != nil {
			return Command{}, err
		}
		verb := map[string]Verb{"git-upload-pack": UploadPack, "git-receive-pack": ReceivePack, "git-upload-archive": UploadArchive}[words[0]]
		return Command{Verb: verb, Repo: p}, nil
	case "merge":
		return parseMerge(words)
	case "git-lfs-transfer", "git-lfs-authenticate":
		return parseLFS(words)
	case "cpm-peer":
		return parsePeer(words[1:])
	case "":
		return Command{}, invalid("empty command")
	}
	return Command{}, invalid("unknown command %q; cpm runs git-upload-pack, git-receive-pack, git-upload-archive, git-lfs-transfer, merge, whoami and info", clip(words[0]))
}

// parsePeer parses the words after "cpm-peer". rsync asks for its
// server side as "--server --daemon ."; nothing else is accepted there,
// since every option of the transfer is then decided by the module that
// cpm configures, not by the command line.
func parsePeer(words []string) (Command, error) {
	if len(words) == 0 {
		return Command{}, invalid("cpm-peer needs a subcommand")
	}
	simple := map[string]Verb{"hello": PeerHello, "meta": PeerMeta, "rekey": PeerRekey, "relay": PeerRelay}
	withRepo := map[string]Verb{"prepare": PeerPrepare, "refs": PeerRefs, "rsync-in": PeerRsyncIn, "rsync-out": PeerRsyncOut, "want": PeerWant, "space": PeerSpace,
		"upload-pack": PeerUploadPack}
	if v, ok := simple[words[0]]; ok {
		if len(words) != 1 {
			return Command{}, invalid("cpm-peer %s takes no arguments", words[0])
		}
		return Command{Verb: v}, nil
	}
	if words[0] == "forward" {
		return parseForward(words[1:])
	}
	if words[0] == "receive-pack" {
		return parseReceivePack(words[1:])
	}
	v, ok := withRepo[words[0]]
	if !ok {
		return Command{}, invalid("unknown cpm-peer subcommand %q", clip(words[0]))
	}
	want := 2
	if v == PeerRsyncIn || v == PeerRsyncOut {
		want = 5
		if len(words) != want || words[2] != "--server" || words[3] != "--daemon" || words[4] != "." {
			return Command{}, invalid("cpm-peer %s takes ORG/REPO --server --daemon .", words[0])
		}
	}
	if len(words) != want {
		return Command{}, invalid("cpm-peer %s takes exactly one repository path", words[0])
	}
	p, err := parsePath(words[1])
	if err != nil {
		return Command{}, err
	}
	return Command{Verb: v, Repo: p}, nil
}

// branchRe is the alphabet of branch names cpm merges: a strict subset
// of what git allows, with no room for options, revisions (^ ~ @{ :) or
// globs.
var branchRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)

// branch turns NAME or refs/heads/NAME into refs/heads/NAME.
func branch(s string) (string, error) {
	name := strings.TrimPrefix(s, "refs/heads/")
	if len(name) > 200 || !branchRe.MatchString(name) || strings.Contains(name, "..") || strings.Contains(name, "//") ||
		strings.HasSuffix(name, "/") || strings.HasSuffix(name, ".") || strings.HasSuffix(name, ".lock") ||
		strings.Contains(name, "/.") || strings.Contains(name, ".lock/") || name == "HEAD" || strings.HasPrefix(name, "refs/") {
		return "", invalid("branch %q: want a branch name such as main or feature/x", clip(s))
	}
	return "refs/heads/" + name, nil
}

// parsePath accepts ORG/REPO or ORG/REPO.git, optionally in single quotes
// (as git quotes it) and with a leading "/" or "~/".
func parsePath(arg string) (names.RepoPath, error) {
	if len(arg) >= 2 && arg[0] == '\'' && arg[len(arg)-1] == '\'' {
		arg = arg[1 : len(arg)-1]
	}
	if strings.ContainsAny(arg, "'\"\\") {
		return names.RepoPath{}, invalid("quotes are not allowed in a repository path")
	}
	if strings.HasPrefix(arg, "-") {
		return names.RepoPath{}, invalid("options are not allowed")
	}
	switch {
	case strings.HasPrefix(arg, "~/"):
		arg = arg[2:]
	case strings.HasPrefix(arg, "/"):
		arg = arg[1:]
	}
	p, err := names.ParseRepoPath(arg)
	if err != nil {
		return names.RepoPath{}, invalid("repository path %q: want ORG/REPO", clip(arg))
	}
	return p, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// parseMerge parses "merge ORG/REPO SOURCE --into TARGET".
func parseMerge(words []string) (Command, error) {
	if len(words) != 5 || words[3] != "--into" {
		return Command{}, invalid("merge takes ORG/REPO SOURCE --into TARGET")
	}
	p, err := parsePath(words[1])
	if err != nil {
		return Command{}, err
	}
	src, err := branch(words[2])
	if err != nil {
		return Command{}, err
	}
	dst, err := branch(words[4])
	if err != nil {
		return Command{}, err
	}
	if src == dst {
		return Command{}, invalid("merge: source and target are the same branch")
	}
	return Command{Verb: Merge, Repo: p, Source: src, Target: dst}, nil
}

// parseLFS parses "git-lfs-transfer PATH OPERATION" (and the same for
// git-lfs-authenticate), as git-lfs sends it: the path unquoted, an
// operation of upload or download and nothing else.
func parseLFS(words []string) (Command, error) {
	if len(words) != 3 {
		return Command{}, invalid("%s takes ORG/REPO and upload or download", words[0])
	}
	p, err := parsePath(words[1])
	if err != nil {
		return Command{}, err
	}
	if words[2] != "upload" && words[2] != "download" {
		return Command{}, invalid("%s: unknown operation %q; want upload or download", words[0], clip(words[2]))
	}
	v := LFSTransfer
	if words[0] == "git-lfs-authenticate" {
		v = LFSAuthenticate
	}
	return Command{Verb: v, Repo: p, Operation: words[2]}, nil
}

// fingerprintRe is a SHA256 key fingerprint as ssh-keygen prints it.
var fingerprintRe = regexp.MustCompile(`^SHA256:[A-Za-z0-9+/]{43}$`)

// parseReceivePack parses the words after "cpm-peer receive-pack": git
// send-pack appends the quoted repository path to the command it is
// given, so the path comes last.
func parseReceivePack(words []string) (Command, error) {
	const usage = "cpm-peer receive-pack takes [--pack] EPOCH GENERATION FINGERPRINT ORG/REPO, or --serve alone"
	if len(words) > 0 && words[0] == "--serve" {
		if len(words) != 1 {
			return Command{}, invalid(usage)
		}
		return Command{Verb: PeerReceivePack, Serve: true}, nil
	}
	pack := len(words) > 0 && words[0] == "--pack"
	if pack {
		words = words[1:]
	}
	if len(words) != 4 || !hex64Re.MatchString(words[2]) {
		return Command{}, invalid(usage)
	}
	epoch, err1 := strconv.ParseInt(words[0], 10, 64)
	gen, err2 := strconv.ParseInt(words[1], 10, 64)
	if err1 != nil || err2 != nil || epoch < 0 || gen < 0 || !digitsRe.MatchString(words[0]+words[1]) {
		return Command{}, invalid(usage)
	}
	p, err := parsePath(words[3])
	if err != nil {
		return Command{}, err
	}
	return Command{Verb: PeerReceivePack, Repo: p, Epoch: epoch, Generation: gen, Fingerprint: words[2], Pack: pack}, nil
}

var (
	hex64Re  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	digitsRe = regexp.MustCompile(`^[0-9]{1,36}$`)
)

// parseForward parses the words after "cpm-peer forward".
func parseForward(words []string) (Command, error) {
	if len(words) != 2 || !fingerprintRe.MatchString(words[1]) {
		return Command{}, invalid("cpm-peer forward takes ORG/REPO and a SHA256 key fingerprint")
	}
	p, err := parsePath(words[0])
	if err != nil {
		return Command{}, err
	}
	return Command{Verb: PeerForward, Repo: p, Key: words[1]}, nil
}
