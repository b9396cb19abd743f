package schema

import (
	"encoding/json"
	"strings"
	"testing"
)

// benchRequest is a TextCompletionRequest of about 1 KiB on the wire.
func benchRequest() *TextCompletionRequest {
	return &TextCompletionRequest{
		Operation: "completion",
		System:    "You are a helpful assistant. Answer briefly and cite the context.",
		Prompt: "Context:\n" + strings.Repeat("The quick brown fox jumps over the lazy dog. ", 18) +
			"\nQuestion: what does the \"fox\" do?\tAnswer in one line — please.",
		Streaming: true,
	}
}

func BenchmarkMarshal(b *testing.B) {
	req := benchRequest()
	wire, _ := Marshal(req)
	b.Run("schema", func(b *testing.B) {
		b.SetBytes(int64(len(wire)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Marshal(req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("schema-append", func(b *testing.B) {
		b.SetBytes(int64(len(wire)))
		b.ReportAllocs()
		buf := make([]byte, 0, 4096)
		for b.Loop() {
			var err error
			if buf, err = AppendMarshal(buf[:0], req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(wire)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkUnmarshal(b *testing.B) {
	wire, _ := Marshal(benchRequest())
	b.Run("schema", func(b *testing.B) {
		b.SetBytes(int64(len(wire)))
		b.ReportAllocs()
		var req TextCompletionRequest
		for b.Loop() {
			if err := Unmarshal(wire, &req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(wire)))
		b.ReportAllocs()
		var req TextCompletionRequest
		for b.Loop() {
			if err := json.Unmarshal(wire, &req); err != nil {
				b.Fatal(err)
			}
		}
	})
}
