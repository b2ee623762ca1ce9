package access

import "errors"

// Kind says why a request was refused.
type Kind int

const (
	// NotFound: the repository does not exist, or the identity may not
	// know that it does; both answer in the same words.
	NotFound Kind = iota + 1
	// Denied: the identity sees the repository but may not do this.
	Denied
	// ReadOnly: the repository is a replica; pushes go to its origin.
	ReadOnly
	// Internal: no answer about the repository could be had.
	Internal
)

var kindNames = [...]string{NotFound: "not found", Denied: "denied", ReadOnly: "read-only", Internal: "internal"}

func (k Kind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Error is a refusal. Its message is what the client is told, without
// the "cpm: " prefix; an Internal error keeps its cause for the log only.
type Error struct {
	Kind Kind
	Repo string // as the client named it
	Ref  string // set when one ref update of a push was refused
	// Reason says why (Denied), or names the origin to push to
	// (ReadOnly).
	Reason string
	// Creatable marks a NotFound push that the identity may turn into a
	// push-to-create.
	Creatable bool
	// Origin names a ReadOnly replica's origin node.
	Origin string
	Err    error // Internal: the cause
}

func (e *Error) Error() string {
	switch e.Kind {
	case NotFound:
		return "repository " + e.Repo + " not found"
	case Denied:
		switch {
		case e.Ref != "":
			return e.Ref + ": " + e.Reason
		case e.Repo != "":
			return e.Repo + ": permission denied (" + e.Reason + ")"
		}
		return e.Reason
	case ReadOnly:
		return e.Repo + " is " + e.Reason
	}
	return "internal error; try again later"
}

func (e *Error) Unwrap() error { return e.Err }

// internal wraps a failure to decide.
func internal(repo string, err error) *Error {
	return &Error{Kind: Internal, Repo: repo, Err: err}
}

// Outcome is how a session or request ended, for logs and metrics.
type Outcome int

const (
	Allowed Outcome = iota // served (whatever git's exit status)
	Refused                // turned down: a decision, not a fault
	Failed                 // could not be served
)

var outcomeNames = [...]string{Allowed: "allow", Refused: "deny", Failed: "error"}

// String is the outcome's name in logs and metric labels.
func (o Outcome) String() string {
	if o >= 0 && int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// OutcomeOf classifies err: nil is Allowed, a refusal (an *Error other
// than Internal, or any error that says Refusal() true) is Refused, and
// anything else is Failed.
func OutcomeOf(err error) Outcome {
	if err == nil {
		return Allowed
	}
	var e *Error
	if errors.As(err, &e) {
		if e.Kind == Internal {
			return Failed
		}
		return Refused
	}
	var r interface{ Refusal() bool }
	if errors.As(err, &r) && r.Refusal() {
		return Refused
	}
	return Failed
}
