package mqttpubsub

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/switchyard-go/switchyard/schema"
)

// destination is where a watermill topic lives on the broker.
type destination struct {
	// name is the MQTT topic name, e.g. "tg/flow/text-completion-request".
	name string
	// qos is the MQTT QoS of the queue: 0, 1 or 2.
	qos byte
	// class is the TrustGraph queue class when the topic was given in class form.
	class schema.Class
	// topic is the parsed queue name.
	topic schema.Topic
}

// topicCache remembers resolved topics; queue names are few and resolved on
// every Publish.
var topicCache sync.Map // string -> destination

// resolveTopic maps a watermill topic (a queue name in any form
// schema.ParseTopic accepts) to its MQTT topic and QoS. Errors wrap
// schema.ErrInvalidTopic.
func resolveTopic(name string) (destination, error) {
	if d, ok := topicCache.Load(name); ok {
		return d.(destination), nil
	}
	t, err := schema.ParseTopic(name)
	if err != nil {
		return destination{}, fmt.Errorf("mqtt: %w", err)
	}
	d := destination{
		name:  t.Tenant + "/" + t.Namespace + "/" + t.Queue,
		qos:   byte(t.QoS),
		class: t.Class(),
		topic: t,
	}
	if reason := checkTopicName(d.name); reason != "" {
		return destination{}, fmt.Errorf("mqtt: %w", &schema.TopicError{Name: name, Reason: "MQTT topic " + quote(d.name) + " " + reason})
	}
	topicCache.Store(name, d)
	return d, nil
}

// checkTopicName returns "" when s is a valid MQTT topic name to publish to,
// else what is wrong with it.
func checkTopicName(s string) string {
	switch {
	case s == "":
		return "is empty"
	case len(s) > 65535:
		return "is longer than 65535 bytes"
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	case strings.ContainsRune(s, 0):
		return "contains a NUL byte"
	case strings.ContainsAny(s, "+#"):
		return "contains a wildcard ('+' or '#')"
	case strings.HasPrefix(s, "$"):
		return "starts with '$', which brokers reserve"
	}
	for _, level := range strings.Split(s, "/") {
		if level == "" {
			return "has an empty level"
		}
	}
	return ""
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

// clientIDPart is the topic's part of a session's client id:
// tenant:namespace:queue. Tenant and namespace cannot contain ':', so
// different topics give different parts.
func (d destination) clientIDPart() string {
	return d.topic.Tenant + ":" + d.topic.Namespace + ":" + d.topic.Queue
}
