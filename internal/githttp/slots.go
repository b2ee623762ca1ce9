package githttp

// Slots bound the git processes HTTP requests run at once: every
// request takes one of all, an anonymous one also one of anon (fewer),
// so that anonymous clones cannot take every slot from those with
// tokens. A request that finds none is answered 503 at once.
type Slots struct {
	all, anon chan struct{}
}

// NewSlots makes Slots of all requests at once, anon of them anonymous.
func NewSlots(all, anon int) *Slots {
	return &Slots{all: make(chan struct{}, all), anon: make(chan struct{}, anon)}
}

// take a slot (anonymous: an anonymous one too); ok false when there is
// none. Call release once when ok.
func (s *Slots) take(anonymous bool) (release func(), ok bool) {
	if s == nil {
		return func() {}, true
	}
	if anonymous {
		select {
		case s.anon <- struct{}{}:
		default:
			return nil, false
		}
	}
	select {
	case s.all <- struct{}{}:
	default:
		if anonymous {
			<-s.anon
		}
		return nil, false
	}
	return func() {
		<-s.all
		if anonymous {
			<-s.anon
		}
	}, true
}
