package pulsarpubsub

import (
	"context"
	"fmt"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
)

func windowEntry(name string) handedOut {
	return handedOut{msg: message.NewMessage(name, nil), ctx: newMessageContext(context.Background())}
}

func uuids(es []handedOut) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.msg.UUID
	}
	return out
}

// The queue keeps hand-out order across the end of its ring, and a sweep
// removes exactly the settled entries behind the oldest one.
func TestWindowQueueKeepsOrderAcrossTheRing(t *testing.T) {
	q := newWindowQueue(4)
	next := 0
	push := func() handedOut {
		e := windowEntry(fmt.Sprint(next))
		next++
		q.push(e)
		return e
	}
	// Go round the ring a few times, three entries deep.
	for range 3 {
		push()
	}
	for range 10 {
		head, n, done := q.front()
		if n != 3 || done {
			t.Fatalf("n %d, done %v", n, done)
		}
		want := fmt.Sprint(next - 3)
		if head.msg.UUID != want {
			t.Fatalf("front %s, want %s", head.msg.UUID, want)
		}
		q.popFront()
		push()
	}
	// Full: the oldest is held, the second and fourth are settled.
	e := push()
	if _, n, _ := q.front(); n != 4 {
		t.Fatalf("n %d, want 4", n)
	}
	all := q.takeAll()
	if got := uuids(all); fmt.Sprint(got) != "[10 11 12 13]" {
		t.Fatalf("takeAll %v", got)
	}
	for _, x := range all {
		q.push(x)
	}
	all[1].msg.Ack()
	e.msg.Nack()
	settled := q.removeSettled()
	if len(settled) != 2 || settled[0].msg.UUID != "11" || !settled[0].acked || settled[1].msg.UUID != "13" || settled[1].acked {
		t.Fatalf("removeSettled %+v", settled)
	}
	if got := uuids(q.takeAll()); fmt.Sprint(got) != "[10 12]" {
		t.Fatalf("left %v, want [10 12]", got)
	}
	if _, n, done := q.front(); n != 0 || done {
		t.Fatalf("n %d, done %v after takeAll", n, done)
	}
	q.close()
	if _, _, done := q.front(); !done {
		t.Fatal("not done when empty and closed")
	}
}

// Pushing past the window never happens with slots taken, but must not
// lose or reorder entries.
func TestWindowQueueGrowsInOrder(t *testing.T) {
	q := newWindowQueue(2)
	q.push(windowEntry("a"))
	q.push(windowEntry("b"))
	q.popFront()
	q.push(windowEntry("c"))
	q.push(windowEntry("d"))
	if got := uuids(q.takeAll()); fmt.Sprint(got) != "[b c d]" {
		t.Fatalf("got %v", got)
	}
}

// BenchmarkWindowQueue is the settler's steady state at concurrency 1: a
// window of 1000 messages, one pushed as the oldest is removed.
func BenchmarkWindowQueue(b *testing.B) {
	q := newWindowQueue(1000)
	e := handedOut{msg: message.NewMessage("x", nil), ctx: newMessageContext(context.Background())}
	e.msg.SetContext(context.Background())
	for range 999 {
		q.push(e)
	}
	b.ReportAllocs()
	for b.Loop() {
		q.push(e)
		q.front()
		q.popFront()
	}
}
