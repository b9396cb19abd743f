package pulsarpubsub

import (
	"context"
	"errors"
	"testing"
	"time"
)

type ctxKey struct{}

func TestMessageContextEndsWhenSettled(t *testing.T) {
	parent := context.WithValue(context.Background(), ctxKey{}, "v")
	// Done asked for before and after the end.
	for _, early := range []bool{true, false} {
		c := newMessageContext(parent)
		var done <-chan struct{}
		if early {
			done = c.Done()
			select {
			case <-done:
				t.Fatal("done before the end")
			default:
			}
		}
		if c.Err() != nil {
			t.Fatalf("Err before the end: %v", c.Err())
		}
		c.end()
		if !early {
			done = c.Done()
		}
		select {
		case <-done:
		default:
			t.Fatalf("not done after the end (Done asked early: %v)", early)
		}
		if !errors.Is(c.Err(), context.Canceled) {
			t.Fatalf("Err after the end: %v", c.Err())
		}
		if c.Value(ctxKey{}) != "v" {
			t.Fatal("the parent's values are lost")
		}
		c.end() // a second end does nothing
	}
}

func TestMessageContextEndsWithTheParent(t *testing.T) {
	// Done asked for before the parent ends: the watch closes it.
	parent, cancel := context.WithCancel(context.Background())
	c := newMessageContext(parent)
	done := c.Done()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("not done after the parent ended")
	}
	if !errors.Is(c.Err(), context.Canceled) {
		t.Fatalf("Err: %v", c.Err())
	}

	// Nobody asked for Done: Err still tells, and Done is closed at once.
	parent, cancel = context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	c = newMessageContext(parent)
	<-parent.Done()
	if !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err: %v", c.Err())
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed after the parent ended")
	}
	if _, ok := c.Deadline(); !ok {
		t.Fatal("the parent's deadline is lost")
	}
}

func TestMessageContextEndStopsWatchingTheParent(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := newMessageContext(parent)
	_ = c.Done()
	c.end()
	cancel()
	if !errors.Is(c.Err(), context.Canceled) || c.unreg != nil {
		t.Fatalf("after the end: err %v, still watching %v", c.Err(), c.unreg != nil)
	}
}
