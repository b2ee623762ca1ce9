package replstream

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"

	"cpm/internal/names"
)

// Request is one synchronous write: what `cpm-peer receive-pack --pack
// EPOCH GENERATION FINGERPRINT ORG/REPO` says on its command line.
type Request struct {
	Repo        string `json:"repo"`
	Epoch       int64  `json:"epoch"`
	Generation  int64  `json:"generation"`
	Fingerprint string `json:"fingerprint"`
}

// Answer is the replica's word on one request: Error empty when it
// committed the write.
type Answer struct {
	Error string `json:"error,omitempty"`
}

var hex64Re = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Check validates what a node sent, as the command line's parser does.
func (r Request) Check() (names.RepoPath, error) {
	rp, err := names.ParseRepoPath(r.Repo)
	if err != nil {
		return names.RepoPath{}, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	if r.Epoch < 0 || r.Generation < 0 || !hex64Re.MatchString(r.Fingerprint) {
		return names.RepoPath{}, fmt.Errorf("%w: a request's epoch, generation or fingerprint", ErrProtocol)
	}
	return rp, nil
}

// WriteJSON writes v as one frame of kind (KindRequest or KindAnswer).
func WriteJSON(w io.Writer, kind byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return WriteFrame(w, kind, b)
}

// DecodeJSON decodes a request's or an answer's payload into v: one
// object, known fields only.
func DecodeJSON(f Frame, kind byte, v any) error {
	if f.Kind != kind {
		return fmt.Errorf("%w: kind %q where %q belongs", ErrProtocol, f.Kind, kind)
	}
	dec := json.NewDecoder(bytes.NewReader(f.Payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: more than one object", ErrProtocol)
	}
	return nil
}
