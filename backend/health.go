package backend

import (
	"errors"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
)

// healthChecker is what adapters' publishers and subscribers implement to
// say whether they are connected.
type healthChecker interface {
	Health() error
}

// healthSet is the publisher and the open subscribers of a backend, whose
// health is the backend's.
type healthSet struct {
	mu      sync.Mutex
	members map[any]struct{}
}

// add records v if it can report its health.
func (s *healthSet) add(v any) {
	if _, ok := v.(healthChecker); !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.members == nil {
		s.members = map[any]struct{}{}
	}
	s.members[v] = struct{}{}
}

// remove forgets v (when it is closed).
func (s *healthSet) remove(v any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.members, v)
}

// Health returns the errors of every member that is not healthy, joined.
func (s *healthSet) Health() error {
	s.mu.Lock()
	members := make([]healthChecker, 0, len(s.members))
	for m := range s.members {
		members = append(members, m.(healthChecker))
	}
	s.mu.Unlock()
	var errs []error
	for _, m := range members {
		if err := m.Health(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// healthTracked is a subscriber that leaves its backend's health set when it
// is closed.
type healthTracked struct {
	message.Subscriber
	set *healthSet
}

// SubscribeInitialize passes on to the subscriber, if it implements it.
func (h healthTracked) SubscribeInitialize(topic string) error {
	if i, ok := h.Subscriber.(message.SubscribeInitializer); ok {
		return i.SubscribeInitialize(topic)
	}
	return nil
}

// Close closes the subscriber and forgets it.
func (h healthTracked) Close() error {
	h.set.remove(h.Subscriber)
	return h.Subscriber.Close()
}

// Health reports the wrapped subscriber's health, if it reports one.
func (h healthTracked) Health() error {
	if hc, ok := h.Subscriber.(healthChecker); ok {
		return hc.Health()
	}
	return nil
}
