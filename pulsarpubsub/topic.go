package pulsarpubsub

import (
	"github.com/switchyard-go/switchyard/schema"
)

// TopicName returns the Pulsar topic that carries the queue name, which may
// be in any form schema.ParseTopic accepts: q0/t/n/q is
// non-persistent://t/n/q, q1/t/n/q and q2/t/n/q are persistent://t/n/q, the
// class form flow:t:q is persistent://t/flow/q and request:t:q (like
// response and notify) non-persistent://t/request/q, and a
// persistent:// or non-persistent:// URI is returned unchanged. A malformed
// name gives the *schema.TopicError that quotes it.
func TopicName(name string) (string, error) {
	t, err := schema.ParseTopic(name)
	if err != nil {
		return "", err
	}
	return pulsarTopic(t), nil
}

func pulsarTopic(t schema.Topic) string {
	scheme := "persistent://"
	if !t.QoS.Persistent() {
		scheme = "non-persistent://"
	}
	return scheme + t.Tenant + "/" + t.Namespace + "/" + t.Queue
}
