package schema

import (
	"errors"
	"fmt"
	"strings"
)

// QoS is the delivery class of a queue, the first part of a generic queue name.
type QoS int

const (
	// QoS0 is best effort: a message may be lost (Pulsar non-persistent, MQTT QoS 0).
	QoS0 QoS = 0
	// QoS1 is at least once: persistent and acknowledged (Pulsar persistent, MQTT QoS 1).
	QoS1 QoS = 1
	// QoS2 is "exactly once" as the design names it; in practice persistent and
	// acknowledged like QoS1 (Pulsar persistent, MQTT QoS 2).
	QoS2 QoS = 2
)

// String returns the queue-name spelling of q: "q0", "q1" or "q2".
func (q QoS) String() string {
	switch q {
	case QoS0, QoS1, QoS2:
		return fmt.Sprintf("q%d", int(q))
	default:
		return fmt.Sprintf("q?(%d)", int(q))
	}
}

// Persistent reports whether messages of this class survive a broker restart.
func (q QoS) Persistent() bool { return q != QoS0 }

// Class is the TrustGraph queue class of a topic. It is the topic's
// namespace when that is flow, request, response or notify, however the name
// was spelled: `response:tg:x`, `q0/tg/response/x` and
// `non-persistent://tg/response/x` are one queue with one meaning. The class
// decides the subscription style (shared or one per client) on every backend;
// the QoS decides persistence.
type Class string

const (
	// ClassNone is the class of a topic in any other namespace. Such a topic
	// is consumed like a flow queue: its consumers share one subscription.
	ClassNone Class = ""
	// ClassFlow is persistent work shared among consumers.
	ClassFlow Class = "flow"
	// ClassRequest is non-persistent requests shared among consumers.
	ClassRequest Class = "request"
	// ClassResponse is non-persistent replies, each client with its own exclusive subscription.
	ClassResponse Class = "response"
	// ClassNotify is non-persistent broadcasts, each client with its own exclusive subscription.
	ClassNotify Class = "notify"
)

// Exclusive reports whether consumers of this class each need their own
// subscription (every client sees every message) rather than sharing one.
func (c Class) Exclusive() bool { return c == ClassResponse || c == ClassNotify }

// Defaults used by NewTopic when no option overrides them.
const (
	DefaultQoS       = QoS1
	DefaultTenant    = "tg"
	DefaultNamespace = "flow"
)

// Topic is a broker-neutral queue name of the form {qos}/{tenant}/{namespace}/{queue}.
// The zero value is not valid; build one with NewTopic or ParseTopic, or as a
// literal checked with Validate.
type Topic struct {
	QoS       QoS
	Tenant    string
	Namespace string
	// Queue is the last part of the name. It may contain ':' (for example
	// "chunk-load:ws1:default") but not '/'.
	Queue string
}

// Class returns the topic's class, read from its namespace (see Class).
func (t Topic) Class() Class {
	switch c := Class(t.Namespace); c {
	case ClassFlow, ClassRequest, ClassResponse, ClassNotify:
		return c
	}
	return ClassNone
}

// TopicOption changes one part of a Topic built by NewTopic.
type TopicOption func(*Topic)

// WithQoS sets the delivery class.
func WithQoS(q QoS) TopicOption { return func(t *Topic) { t.QoS = q } }

// WithTenant sets the tenant.
func WithTenant(tenant string) TopicOption { return func(t *Topic) { t.Tenant = tenant } }

// WithNamespace sets the namespace.
func WithNamespace(ns string) TopicOption { return func(t *Topic) { t.Namespace = ns } }

// NewTopic builds the topic for queue with the defaults q1, tenant "tg" and
// namespace "flow", changed by opts, and validates it.
func NewTopic(queue string, opts ...TopicOption) (Topic, error) {
	t := Topic{QoS: DefaultQoS, Tenant: DefaultTenant, Namespace: DefaultNamespace, Queue: queue}
	for _, o := range opts {
		o(&t)
	}
	if err := t.Validate(); err != nil {
		return Topic{}, err
	}
	return t, nil
}

// String returns the generic form, e.g. "q1/tg/flow/text-completion-request".
func (t Topic) String() string {
	return t.QoS.String() + "/" + t.Tenant + "/" + t.Namespace + "/" + t.Queue
}

// WithQueueSuffix returns a copy of t whose queue is queue + ":" + suffix, the
// way per-workspace queues are named (e.g. "chunk-load:ws1").
func (t Topic) WithQueueSuffix(suffix string) Topic {
	t.Queue = t.Queue + ":" + suffix
	return t
}

// ErrInvalidTopic is wrapped by every error about a malformed queue name.
var ErrInvalidTopic = errors.New("invalid queue name")

// TopicError describes what is wrong with a queue name.
type TopicError struct {
	Name   string // the name as given
	Reason string // which part is wrong and why
}

// Error implements error. It quotes the name and names the wrong part.
func (e *TopicError) Error() string {
	return fmt.Sprintf("invalid queue name %q: %s", e.Name, e.Reason)
}

// Unwrap lets errors.Is match ErrInvalidTopic.
func (e *TopicError) Unwrap() error { return ErrInvalidTopic }

func topicErr(name, format string, args ...any) error {
	return &TopicError{Name: name, Reason: fmt.Sprintf(format, args...)}
}

// Validate reports whether every part of t is well formed.
func (t Topic) Validate() error {
	return t.validate(t.String())
}

func (t Topic) validate(name string) error {
	if t.QoS != QoS0 && t.QoS != QoS1 && t.QoS != QoS2 {
		return topicErr(name, "qos must be q0, q1 or q2")
	}
	if err := checkPart("tenant", t.Tenant, false); err != "" {
		return topicErr(name, "%s", err)
	}
	if err := checkPart("namespace", t.Namespace, false); err != "" {
		return topicErr(name, "%s", err)
	}
	if err := checkPart("queue", t.Queue, true); err != "" {
		return topicErr(name, "%s", err)
	}
	return nil
}

// checkPart returns "" when s is a valid name part, else what is wrong with it.
// Parts are ASCII letters, digits, '-', '_', '.', and '=' ; the queue part also
// allows ':'.
func checkPart(what, s string, allowColon bool) string {
	if s == "" {
		return what + " is empty"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '_', c == '.', c == '=':
		case c == ':' && allowColon:
		default:
			return fmt.Sprintf("%s %q contains %s, which is not allowed", what, s, describeChar(s, i))
		}
	}
	if allowColon && (strings.HasPrefix(s, ":") || strings.HasSuffix(s, ":")) {
		return fmt.Sprintf("%s %q must not start or end with ':'", what, s)
	}
	return ""
}

func describeChar(s string, i int) string {
	switch s[i] {
	case '/':
		return "'/'"
	case '+', '#':
		return fmt.Sprintf("the wildcard %q", s[i])
	case 0:
		return "a NUL byte"
	case ' ', '\t', '\n', '\r':
		return "whitespace"
	}
	if s[i] >= 0x80 {
		return "a non-ASCII character"
	}
	if s[i] < 0x20 || s[i] == 0x7f {
		return "a control character"
	}
	return fmt.Sprintf("%q", s[i])
}

// ParseTopic parses a queue name in any accepted form:
//
//   - generic:  q1/tg/flow/text-completion-request
//   - class:    flow:tg:text-completion-request (flow, request, response or notify)
//   - Pulsar:   persistent://tenant/namespace/queue or non-persistent://tenant/namespace/queue
//
// Class form maps flow to q1 and request, response and notify to q0, with the
// topicspace as tenant and the class as namespace. A malformed name gives a
// *TopicError that quotes it and says which part is wrong.
func ParseTopic(name string) (Topic, error) {
	if name == "" {
		return Topic{}, topicErr(name, "name is empty")
	}
	if strings.TrimSpace(name) != name {
		return Topic{}, topicErr(name, "leading or trailing whitespace")
	}
	if scheme, rest, ok := strings.Cut(name, "://"); ok {
		return parsePulsarURI(name, scheme, rest)
	}
	if strings.Contains(name, "/") {
		return parseGeneric(name)
	}
	if strings.Contains(name, ":") {
		return parseClass(name)
	}
	return Topic{}, topicErr(name, "expected {qos}/{tenant}/{namespace}/{queue}, class:topicspace:topic, or a persistent:// or non-persistent:// URI")
}

func parseGeneric(name string) (Topic, error) {
	parts := strings.SplitN(name, "/", 4)
	if len(parts) != 4 {
		return Topic{}, topicErr(name, "has %d parts, expected 4: {qos}/{tenant}/{namespace}/{queue}", len(parts))
	}
	var q QoS
	switch parts[0] {
	case "q0":
		q = QoS0
	case "q1":
		q = QoS1
	case "q2":
		q = QoS2
	default:
		return Topic{}, topicErr(name, "qos %q must be q0, q1 or q2", parts[0])
	}
	t := Topic{QoS: q, Tenant: parts[1], Namespace: parts[2], Queue: parts[3]}
	if err := t.validate(name); err != nil {
		return Topic{}, err
	}
	return t, nil
}

func parseClass(name string) (Topic, error) {
	parts := strings.SplitN(name, ":", 3)
	if len(parts) != 3 {
		return Topic{}, topicErr(name, "class form needs 3 parts, class:topicspace:topic")
	}
	t := Topic{Tenant: parts[1], Namespace: parts[0], Queue: parts[2]}
	switch t.Class() {
	case ClassFlow:
		t.QoS = QoS1
	case ClassRequest, ClassResponse, ClassNotify:
		t.QoS = QoS0
	default:
		return Topic{}, topicErr(name, "class %q must be flow, request, response or notify", parts[0])
	}
	if err := t.validate(name); err != nil {
		return Topic{}, err
	}
	return t, nil
}

func parsePulsarURI(name, scheme, rest string) (Topic, error) {
	var q QoS
	switch scheme {
	case "persistent":
		q = QoS1
	case "non-persistent":
		q = QoS0
	default:
		return Topic{}, topicErr(name, "scheme %q must be persistent or non-persistent", scheme)
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) != 3 {
		return Topic{}, topicErr(name, "a Pulsar URI needs tenant/namespace/topic after %s://", scheme)
	}
	t := Topic{QoS: q, Tenant: parts[0], Namespace: parts[1], Queue: parts[2]}
	if err := t.validate(name); err != nil {
		return Topic{}, err
	}
	return t, nil
}
