package pulsarpubsub

import (
	"strconv"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/switchyard-go/switchyard/schema"
)

// UUIDProperty is the Pulsar message property that carries the watermill
// message UUID. It is not part of the received message's metadata.
const UUIDProperty = "_watermill_message_uuid"

// producerMessage turns msg into a Pulsar message: the payload as it is, every
// metadata entry as a property, the UUID in UUIDProperty unless omitUUID is
// set and, when keyMetadata is set, the value of that metadata key as the
// message key.
func producerMessage(msg *message.Message, keyMetadata string, omitUUID bool) *pulsar.ProducerMessage {
	pm := &pulsar.ProducerMessage{}
	fillProducerMessage(pm, msg, keyMetadata, omitUUID)
	return pm
}

// fillProducerMessage sets pm as producerMessage describes, reusing the map
// pm.Properties when there is one.
func fillProducerMessage(pm *pulsar.ProducerMessage, msg *message.Message, keyMetadata string, omitUUID bool) {
	props := pm.Properties
	if props == nil {
		props = make(map[string]string, len(msg.Metadata)+1)
	} else {
		clear(props)
	}
	for k, v := range msg.Metadata {
		props[k] = v
	}
	if !omitUUID {
		props[UUIDProperty] = msg.UUID
	}
	payload := []byte(msg.Payload)
	if payload == nil {
		payload = []byte{}
	}
	*pm = pulsar.ProducerMessage{Payload: payload, Properties: props}
	if keyMetadata != "" {
		pm.Key = msg.Metadata.Get(keyMetadata)
	}
}

// watermillMessage turns a received Pulsar message into a watermill message:
// the UUID from UUIDProperty, the other properties as metadata,
// schema.DeliveryAttemptKey set to attempt and, when keyMetadata is set, the
// message key under that metadata key unless a property already fills it.
//
// A message sent without a UUID (by a Python client, or a Publisher with
// PublisherConfig.OmitUUID) is named after its Pulsar message ID on a
// persistent topic, so that it keeps its UUID when delivered again, and gets
// a new UUID on a non-persistent one, whose messages have no IDs of their
// own. On a persistent topic the metadata is the map pm.Properties
// returned, changed to that: pm's properties serve nothing afterwards (on a
// non-persistent topic a nacked message is published again with them).
func watermillMessage(pm pulsar.Message, keyMetadata string, attempt int, persistent bool) *message.Message {
	props := pm.Properties()
	uuid := props[UUIDProperty]
	if uuid == "" {
		if persistent {
			uuid = messageIDName(pm.ID())
		} else {
			uuid = watermill.NewUUID()
		}
	}
	var md message.Metadata
	if persistent && props != nil {
		md = props
		delete(md, UUIDProperty)
	} else {
		md = make(message.Metadata, len(props)+2)
		for k, v := range props {
			if k != UUIDProperty {
				md[k] = v
			}
		}
	}
	md[schema.DeliveryAttemptKey] = strconv.Itoa(attempt)
	if keyMetadata != "" {
		if key := pm.Key(); key != "" {
			if _, ok := md[keyMetadata]; !ok {
				md[keyMetadata] = key
			}
		}
	}
	msg := message.NewMessage(uuid, pm.Payload())
	msg.Metadata = md
	return msg
}

// messageIDName names a message after its Pulsar message ID: ledger, entry,
// partition and index in its batch, as in "1234:56:-1:7". Ledger IDs are
// unique in a cluster, so the name is too.
func messageIDName(id pulsar.MessageID) string {
	b := make([]byte, 0, 48)
	b = strconv.AppendInt(b, id.LedgerID(), 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, id.EntryID(), 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(id.PartitionIdx()), 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(id.BatchIdx()), 10)
	return string(b)
}

// deliveryAttempt returns the delivery attempt of a received message. On a
// persistent topic the broker counts redeliveries: the attempt is that
// count plus one, whatever the message's properties say. On a non-persistent
// topic the broker redelivers nothing; a nacked message comes back as a copy
// that carries its attempt in schema.DeliveryAttemptKey (see Subscriber), so
// the attempt is that property (1 when absent or not a positive number).
func deliveryAttempt(pm pulsar.Message, persistent bool) int {
	if persistent {
		return int(pm.RedeliveryCount()) + 1
	}
	return wireAttempt(pm.Properties()) + int(pm.RedeliveryCount())
}

// wireAttempt reads schema.DeliveryAttemptKey from props: a positive decimal
// number, else 1.
func wireAttempt(props map[string]string) int {
	n, err := strconv.Atoi(props[schema.DeliveryAttemptKey])
	if err != nil || n < 1 {
		return 1
	}
	return n
}
