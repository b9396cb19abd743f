package backend

import (
	"context"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/router"
)

// An exclusive subscriber's queue goes away with it, so a process that
// opens and closes clients does not collect their messages forever.
func TestMemoryExclusiveQueuesAreRemovedOnClose(t *testing.T) {
	b := NewMemory(nil).(*memoryBackend)
	defer b.Close()
	for range 3 {
		sub, err := b.NewSubscriber(router.SubscribeOptions{Exclusive: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sub.Subscribe(context.Background(), "q0/tg/response/x"); err != nil {
			t.Fatal(err)
		}
		if err := sub.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Publisher().Publish("q0/tg/response/x", message.NewMessage(watermill.NewUUID(), nil)); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.groups) != 0 || len(b.topics) != 0 {
		t.Fatalf("%d queues and %d topics left after every exclusive subscriber closed", len(b.groups), len(b.topics))
	}
}
