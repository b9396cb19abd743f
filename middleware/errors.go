package middleware

import (
	"errors"
	"fmt"
	"time"
)

// permanentError marks an error that redelivery cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as permanent: the input goes to the poison queue and is
// acked instead of being redelivered. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	if IsPermanent(err) {
		return err
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with
// Permanent or ErrorType, is a DecodeError or an InputError, or says of
// itself that it is permanent (a `Permanent() bool` method, as the
// adapters' publish errors for a message too large or a refused
// authorisation have).
func IsPermanent(err error) bool {
	var p *permanentError
	if errors.As(err, &p) {
		return true
	}
	var d *DecodeError
	if errors.As(err, &d) {
		return true
	}
	var in *InputError
	if errors.As(err, &in) {
		return true
	}
	var self interface{ Permanent() bool }
	return errors.As(err, &self) && self.Permanent()
}

// typedError carries the `type` of the error response a handler wants.
type typedError struct {
	errType string
	err     error
}

func (e *typedError) Error() string { return e.err.Error() }
func (e *typedError) Unwrap() error { return e.err }

// ErrorType marks err as the handler's answer: the request is answered at
// once, without redelivery, with an error response whose `type` is errType
// (TrustGraph's types include llm-error, embeddings-error and
// not-implemented). ErrorType(t, nil) is nil.
func ErrorType(errType string, err error) error {
	if err == nil {
		return nil
	}
	return Permanent(&typedError{errType: errType, err: err})
}

// DecodeError says that an input message could not be decoded. It is always
// permanent: the same bytes will never decode.
type DecodeError struct {
	// Type is the Go type the payload was decoded into.
	Type string
	// Err is the codec's error, which names the field path.
	Err error
}

// Error implements error.
func (e *DecodeError) Error() string {
	return fmt.Sprintf("cannot decode payload into %s: %v", e.Type, e.Err)
}

// Unwrap returns the codec's error.
func (e *DecodeError) Unwrap() error { return e.Err }

// TooManyRequestsError is returned by a handler whose downstream service said
// it is overloaded. The message is nacked after a pause, not retried at once.
type TooManyRequestsError struct {
	// Err is the downstream error.
	Err error
	// RetryAfter is how long the downstream asked to wait; zero lets the
	// policy choose.
	RetryAfter time.Duration
}

// Error implements error.
func (e *TooManyRequestsError) Error() string {
	if e.Err == nil {
		return "too many requests"
	}
	return "too many requests: " + e.Err.Error()
}

// Unwrap returns the downstream error.
func (e *TooManyRequestsError) Unwrap() error { return e.Err }

// TooManyRequests wraps err as a TooManyRequestsError with the given pause.
func TooManyRequests(err error, retryAfter time.Duration) error {
	return &TooManyRequestsError{Err: err, RetryAfter: retryAfter}
}

// IsTooManyRequests reports whether err is, or wraps, a TooManyRequestsError.
func IsTooManyRequests(err error) bool {
	var t *TooManyRequestsError
	return errors.As(err, &t)
}

// PanicError is the error Recover makes of a panic.
type PanicError struct {
	// Value is what the handler panicked with.
	Value any
	// Stack is the goroutine's stack at the panic.
	Stack []byte
}

// Error implements error. It leaves the stack out; it is logged separately.
func (e *PanicError) Error() string { return fmt.Sprintf("handler panicked: %v", e.Value) }
