package rrclient

import (
	"context"
	"testing"
)

// BenchmarkRequest measures round trips through a service on the memory
// backend, one at a time.
func BenchmarkRequest(b *testing.B) {
	c := benchClient(b)
	req := &tcReq{Prompt: "hello"}
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Request(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRequestParallel measures round trips with GOMAXPROCS callers
// at once on one client.
func BenchmarkRequestParallel(b *testing.B) {
	c := benchClient(b)
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := &tcReq{Prompt: "hello"}
		for pb.Next() {
			if _, err := c.Request(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// benchClient returns a client of a service that answers in capitals.
func benchClient(b *testing.B) *Client[tcReq, tcResp] {
	be := memory(b)
	in, out := queues()
	serve(b, be, in, out, shout)
	return newClient(b, be, in, out, Config{})
}
