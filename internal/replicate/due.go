package replicate

import (
	"hash/fnv"
	"time"
)

// DeepDue reports whether the replica of repo on server is due for its
// deep check at now, every `every`. A replica never checked gets a first
// check at a point of the interval after since (when the server was added)
// that its names choose, so that many replicas spread their reading over
// the interval instead of all at once.
func DeepDue(repo, server string, last, since, now time.Time, every time.Duration) bool {
	if every <= 0 {
		return false
	}
	if !last.IsZero() {
		return !now.Before(last.Add(every))
	}
	h := fnv.New64a()
	h.Write([]byte(repo + "\x00" + server))
	return !now.Before(since.Add(time.Duration(h.Sum64() % uint64(every))))
}
