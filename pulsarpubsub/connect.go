package pulsarpubsub

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/apache/pulsar-client-go/pulsar"
)

// connInfo is what errors about connecting say about the broker.
type connInfo struct {
	url              string // without user information
	operationTimeout time.Duration
	diag             *connDiag
	onSlow           func(elapsed, limit time.Duration)
	slowInterval     time.Duration
}

// slowHook returns the OnSlowConnect hook, its interval and the limit it
// reports for a publisher or subscriber configured with cfg (defaults
// applied) on a client described by c: the hook of cfg, else the one the
// client was made with.
func (c *connInfo) slowHook(cfg ClientConfig) (func(elapsed, limit time.Duration), time.Duration, time.Duration) {
	hook, interval, limit := cfg.OnSlowConnect, cfg.SlowConnectInterval, cfg.OperationTimeout
	if c != nil {
		if hook == nil {
			hook, interval = c.onSlow, c.slowInterval
		}
		limit = c.operationTimeout
	}
	if limit == 0 {
		limit = DefaultOperationTimeout
	}
	return hook, interval, limit
}

// sharedClient is a pulsar.Client made by NewClient. It remembers the broker
// URL and the last connection failure, so that the publishers and
// subscribers sharing it report clear connection errors.
type sharedClient struct {
	pulsar.Client
	info *connInfo
}

// infoOf returns what is known about the connection of c, or nil for a
// client that NewClient did not make.
func infoOf(c pulsar.Client) *connInfo {
	if sc, ok := c.(*sharedClient); ok {
		return sc.info
	}
	return nil
}

// NewClient returns a Pulsar client configured by cfg, for sharing between
// publishers and subscribers (PublisherConfig.Client, SubscriberConfig.Client).
// The caller closes it after them. Like every Pulsar client it connects
// lazily: an unreachable broker or refused credentials show up as an error
// of the first producer or consumer, after about cfg.OperationTimeout. Its
// log lines go to logger.
func NewClient(cfg ClientConfig, logger watermill.LoggerAdapter) (pulsar.Client, error) {
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	client, info, err := newClient(cfg, logger)
	if err != nil {
		return nil, err
	}
	return &sharedClient{Client: client, info: info}, nil
}

// newClient makes a client for cfg (defaults applied, valid).
func newClient(cfg ClientConfig, logger watermill.LoggerAdapter) (pulsar.Client, *connInfo, error) {
	info := &connInfo{
		url:              redactURL(cfg.URL),
		operationTimeout: cfg.OperationTimeout,
		diag:             &connDiag{},
		onSlow:           cfg.OnSlowConnect,
		slowInterval:     cfg.SlowConnectInterval,
	}
	opts, err := cfg.clientOptions(logger, info.diag)
	if err != nil {
		return nil, nil, err
	}
	client, err := pulsar.NewClient(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("pulsarpubsub: creating client for %s: %w", info.url, err)
	}
	return client, info, nil
}

// connectError wraps an error of creating a producer or a consumer with what
// went wrong with the connection. Its message is one line.
type connectError struct {
	msg string
	err error
}

func (e *connectError) Error() string {
	return e.msg + ": " + strings.ReplaceAll(e.err.Error(), "\n", "; ")
}

func (e *connectError) Unwrap() error { return e.err }

// describe adds the broker URL, and the reason of the last connection failure
// since started with a plain explanation, to err. The token never appears:
// neither the client library's errors nor its log lines carry it.
func (c *connInfo) describe(err error, started time.Time) error {
	if c == nil {
		return err
	}
	msg := "broker " + c.url
	reason := c.diag.since(started)
	if hint := explain(reason, err); hint != "" {
		msg += ": " + hint
	}
	if reason != "" {
		msg += " (" + reason + ")"
	}
	if isTimeout(err) {
		msg += fmt.Sprintf(", gave up after the operation timeout of %s", c.operationTimeout)
	}
	return &connectError{msg: msg, err: err}
}

// explain says in plain words what a connection failure means.
func explain(reason string, err error) string {
	text := strings.ToLower(reason + " " + err.Error())
	switch {
	case strings.Contains(text, "authenticat") || strings.Contains(text, "unauthorized") ||
		strings.Contains(text, "auth credentials"):
		return "the broker refused the credentials"
	case strings.Contains(text, "x509") || strings.Contains(text, "tls") || strings.Contains(text, "certificate"):
		return "the TLS handshake failed"
	case strings.Contains(text, "connection refused") || strings.Contains(text, "no such host") ||
		strings.Contains(text, "i/o timeout") || strings.Contains(text, "network is unreachable") ||
		strings.Contains(text, "failed to connect"):
		return "the broker cannot be reached"
	case isTimeout(err):
		return "the broker did not answer in time"
	}
	return ""
}

func isTimeout(err error) bool {
	var to interface{ Timeout() bool }
	if errors.As(err, &to) && to.Timeout() {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "deadline exceeded") || strings.Contains(msg, "timed out") || strings.Contains(msg, "timeout")
}
