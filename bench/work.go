package bench

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-go/switchyard/schema"
)

// EchoModel is the model name every benchmark processor reports.
const EchoModel = "echo"

// Echo is the work every processor variant does per message: it answers a
// completion request with its own prompt, rough token counts and the model
// name. It does no I/O, so a benchmark measures the framework around it.
func Echo(_ context.Context, req *schema.TextCompletionRequest) (*schema.TextCompletionResponse, error) {
	in := int64(len(req.System)+len(req.Prompt)) / 4
	out := int64(len(req.Prompt)) / 4
	model := EchoModel
	return &schema.TextCompletionResponse{
		Response: req.Prompt, InToken: &in, OutToken: &out, Model: &model, EndOfStream: true,
	}, nil
}

// EchoPayload is Echo on encoded bytes, as the raw client loops run it:
// decode the request with the schema codec, build the response, encode it.
func EchoPayload(payload []byte) ([]byte, error) {
	var req schema.TextCompletionRequest
	if err := schema.Unmarshal(payload, &req); err != nil {
		return nil, err
	}
	resp, err := Echo(context.Background(), &req)
	if err != nil {
		return nil, err
	}
	return schema.Marshal(resp)
}

// RequestPayload returns a JSON TextCompletionRequest of about size bytes
// (at least a few hundred), with every field a Python sender writes.
func RequestPayload(size int) ([]byte, error) {
	const system = "You are a helpful assistant. Answer briefly and cite the source documents you were given."
	words := []string{"switchyard", "moves", "messages", "between", "queues", "on", "any", "broker", "and",
		"every", "processor", "decodes", "one", "request", "builds", "its", "response", "publishes", "it"}
	format := "text"
	req := schema.TextCompletionRequest{Operation: schema.OperationCompletion, System: system, ResponseFormat: &format}
	base, err := schema.Marshal(&req)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	for i := 0; len(base)+b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[i%len(words)])
	}
	req.Prompt = b.String()
	return schema.Marshal(&req)
}

// Message kinds carried in the first byte of a benchmark id.
const (
	kindThroughput = 't'
	kindRoundTrip  = 'r'
)

// makeID returns the id property of a benchmark request: its kind, a
// sequence number and the send time as an offset from the run's epoch. The
// id travels through every processor unchanged (it is the correlation id
// every processor copies to its response), so the counter reads the send
// time back from the response without any shared state.
func makeID(kind byte, seq uint64, sent time.Duration) string {
	b := make([]byte, 0, 32)
	b = append(b, kind, '.')
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(sent), 10)
	return string(b)
}

var errBadID = errors.New("not a benchmark id")

// parseID reads an id made by makeID.
func parseID(id string) (kind byte, seq uint64, sent time.Duration, err error) {
	if len(id) < 5 || id[1] != '.' {
		return 0, 0, 0, errBadID
	}
	kind = id[0]
	rest := id[2:]
	dot := strings.IndexByte(rest, '.')
	if dot < 0 {
		return 0, 0, 0, errBadID
	}
	seq, err = strconv.ParseUint(rest[:dot], 10, 64)
	if err != nil {
		return 0, 0, 0, errBadID
	}
	ns, err := strconv.ParseInt(rest[dot+1:], 10, 64)
	if err != nil {
		return 0, 0, 0, errBadID
	}
	return kind, seq, time.Duration(ns), nil
}
