package gateway

import (
	"errors"

	"cpm/internal/gitservice"
)

// errCreateOnPost is a push's advertisement for a repository that the
// push may create: a GET (a safe method, which a crawler or a prefetch
// may send) creates nothing; the POST that carries the push does.
var errCreateOnPost = errors.New("repository created by the push itself")

// newRepoCapabilities are what git receive-pack advertises for an empty
// repository of cpm's (sha1, no push options): the POST's receive-pack,
// run once the repository exists, honours all of them.
const newRepoCapabilities = "report-status report-status-v2 delete-refs side-band-64k quiet atomic ofs-delta object-format=sha1 agent=cpm"

// advertiseNew writes what receive-pack --advertise-refs writes for an
// empty repository: no refs, only the zero id with capabilities^{}
// (and "version 1" first when the client asked for it).
func advertiseNew(s Session) error {
	var out []byte
	if gitservice.ProtocolVersion(s.GitProtocol) == 1 {
		out = append(out, gitservice.PktLine("version 1\n")...)
	}
	out = append(out, gitservice.PktLine("0000000000000000000000000000000000000000 capabilities^{}\x00"+newRepoCapabilities+"\n")...)
	out = append(out, gitservice.Flush...)
	_, err := s.Stdout.Write(out)
	return err
}
