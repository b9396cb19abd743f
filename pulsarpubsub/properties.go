package pulsarpubsub

import (
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/apache/pulsar-client-go/pulsar"
)

// UUIDProperty is the Pulsar message property that carries the watermill
// message UUID. It is not part of the received message's metadata.
const UUIDProperty = "_watermill_message_uuid"

// producerMessage turns msg into a Pulsar message: the payload as it is, every
// metadata entry as a property, the UUID in UUIDProperty and, when keyMetadata
// is set, the value of that metadata key as the message key.
func producerMessage(msg *message.Message, keyMetadata string) *pulsar.ProducerMessage {
	props := make(map[string]string, len(msg.Metadata)+1)
	for k, v := range msg.Metadata {
		props[k] = v
	}
	props[UUIDProperty] = msg.UUID
	payload := []byte(msg.Payload)
	if payload == nil {
		payload = []byte{}
	}
	pm := &pulsar.ProducerMessage{Payload: payload, Properties: props}
	if keyMetadata != "" {
		pm.Key = msg.Metadata.Get(keyMetadata)
	}
	return pm
}

// watermillMessage turns a received Pulsar message into a watermill message:
// the UUID from UUIDProperty (a new one when a foreign producer did not set
// it), the other properties as metadata and, when keyMetadata is set, the
// message key under that metadata key unless a property already fills it.
func watermillMessage(pm pulsar.Message, keyMetadata string) *message.Message {
	props := pm.Properties()
	uuid := props[UUIDProperty]
	if uuid == "" {
		uuid = watermill.NewUUID()
	}
	md := make(message.Metadata, len(props)+1)
	for k, v := range props {
		if k != UUIDProperty {
			md[k] = v
		}
	}
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
