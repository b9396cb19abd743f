package llm

import (
	"context"
	"errors"

	"github.com/switchyard-go/switchyard/llm/openai"
	"github.com/switchyard-go/switchyard/middleware"
)

// Failure turns a model server's error into what the delivery policy acts
// on, as TrustGraph's LLM services do: a rate limit is backed off and the
// request redelivered (never a tight loop), the caller's own cancellation
// is returned as it is (the router decides), and anything else is answered
// at once with an error response of type errType (llm-error,
// embeddings-error).
func Failure(errType string, err error) error {
	if retry, ok := openai.IsRateLimit(err); ok {
		return middleware.TooManyRequests(err, retry)
	}
	var tr *openai.TransportError
	if !errors.As(err, &tr) && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return err
	}
	return middleware.ErrorType(errType, err)
}
