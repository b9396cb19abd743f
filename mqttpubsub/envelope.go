package mqttpubsub

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/schema"
)

// EnvelopeErrorKey is the metadata key of a received message whose MQTT
// payload could not be read as an envelope. Its value says why. The message
// carries the received bytes as payload and a new UUID; the router's poison
// handling moves such a message to the poison queue before any handler sees it.
const EnvelopeErrorKey = "switchyard_input_error"

// envelopeVersion is the value of the "switchyard" key of the envelopes this
// package writes, and the only one it reads.
const envelopeVersion = 1

// Payload encodings of the envelope's "encoding" key.
const (
	encodingJSON   = "json"
	encodingText   = "text"
	encodingBase64 = "base64"
)

// ErrNotEnvelope is wrapped by every envelope decoding error.
var ErrNotEnvelope = errors.New("not a switchyard MQTT envelope")

type envelopeIn struct {
	Version  *int              `json:"switchyard"`
	UUID     *string           `json:"uuid"`
	Metadata map[string]string `json:"metadata"`
	Encoding string            `json:"encoding"`
	Payload  json.RawMessage   `json:"payload"`
	For      string            `json:"for"`
}

// envelope is a decoded envelope.
type envelope struct {
	uuid     string
	metadata message.Metadata
	payload  []byte
	// target is the "for" key of a copy that a nack published again: the
	// subscription it is meant for (see subscriptionTarget). Empty for a
	// message published by a Publisher.
	target string
}

// marshalEnvelope writes msg as an envelope. The payload is embedded as it is
// when it is JSON without surrounding white space, so it decodes back byte
// for byte; anything else is a string with an encoding.
func marshalEnvelope(msg *message.Message) ([]byte, error) {
	return appendEnvelope(msg.UUID, msg.Metadata, msg.Payload, ""), nil
}

// appendEnvelope writes an envelope; a non-empty target adds the "for" key
// of a redelivery copy.
func appendEnvelope(uuid string, metadata map[string]string, p []byte, target string) []byte {
	encoding := ""
	var value []byte
	switch {
	case embeddable(p):
		value = p
	case utf8.Valid(p):
		encoding = encodingText
		value = schema.AppendString(make([]byte, 0, len(p)+2), string(p))
	default:
		encoding = encodingBase64
		value = make([]byte, 0, base64.StdEncoding.EncodedLen(len(p))+2)
		value = append(value, '"')
		value = base64.StdEncoding.AppendEncode(value, p)
		value = append(value, '"')
	}
	// Written by hand rather than with encoding/json: this runs for every
	// message published and the reflective encoder cost several times more
	// than the rest of the envelope.
	out := make([]byte, 0, len(value)+len(uuid)+len(target)+64+32*len(metadata))
	out = append(out, `{"switchyard":`...)
	out = strconv.AppendInt(out, envelopeVersion, 10)
	out = append(out, `,"uuid":`...)
	out = schema.AppendString(out, uuid)
	if target != "" {
		out = append(out, `,"for":`...)
		out = schema.AppendString(out, target)
	}
	if len(metadata) > 0 {
		out = append(out, `,"metadata":{`...)
		first := true
		for k, v := range metadata {
			if !first {
				out = append(out, ',')
			}
			first = false
			out = schema.AppendString(out, k)
			out = append(out, ':')
			out = schema.AppendString(out, v)
		}
		out = append(out, '}')
	}
	if encoding != "" {
		out = append(out, `,"encoding":"`...)
		out = append(out, encoding...)
		out = append(out, '"')
	}
	out = append(out, `,"payload":`...)
	out = append(out, value...)
	return append(out, '}')
}

// embeddable reports whether p can be embedded as a JSON value and read back
// unchanged.
func embeddable(p []byte) bool {
	if len(p) == 0 || isSpace(p[0]) || isSpace(p[len(p)-1]) {
		return false
	}
	return json.Valid(p)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// unmarshalEnvelope reads an envelope. Errors wrap ErrNotEnvelope and say
// what is wrong.
func unmarshalEnvelope(data []byte) (uuid string, metadata message.Metadata, payload []byte, err error) {
	env, err := decodeEnvelope(data)
	return env.uuid, env.metadata, env.payload, err
}

// decodeEnvelope reads an envelope, the "for" key of a redelivery copy
// included. Errors wrap ErrNotEnvelope and say what is wrong.
func decodeEnvelope(data []byte) (envelope, error) {
	uuid, metadata, payload, target, err := decodeEnvelopeParts(data)
	return envelope{uuid: uuid, metadata: metadata, payload: payload, target: target}, err
}

func decodeEnvelopeParts(data []byte) (uuid string, metadata message.Metadata, payload []byte, target string, err error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return "", nil, nil, "", fmt.Errorf("%w: the MQTT payload is empty", ErrNotEnvelope)
	}
	if trimmed[0] != '{' {
		return "", nil, nil, "", fmt.Errorf("%w: the MQTT payload is not a JSON object", ErrNotEnvelope)
	}
	var in envelopeIn
	if err := json.Unmarshal(data, &in); err != nil {
		return "", nil, nil, "", fmt.Errorf("%w: %w", ErrNotEnvelope, err)
	}
	if in.Version == nil {
		return "", nil, nil, "", fmt.Errorf("%w: the JSON object has no \"switchyard\" version key", ErrNotEnvelope)
	}
	if *in.Version != envelopeVersion {
		return "", nil, nil, "", fmt.Errorf("%w: envelope version %d is not supported (want %d)", ErrNotEnvelope, *in.Version, envelopeVersion)
	}
	if in.UUID == nil {
		return "", nil, nil, "", fmt.Errorf("%w: the envelope has no \"uuid\"", ErrNotEnvelope)
	}
	if in.Payload == nil {
		return "", nil, nil, "", fmt.Errorf("%w: the envelope has no \"payload\"", ErrNotEnvelope)
	}
	switch in.Encoding {
	case "", encodingJSON:
		payload = in.Payload
	case encodingText:
		var s string
		if err := json.Unmarshal(in.Payload, &s); err != nil {
			return "", nil, nil, "", fmt.Errorf("%w: a text payload must be a JSON string: %w", ErrNotEnvelope, err)
		}
		payload = []byte(s)
	case encodingBase64:
		var s string
		if err := json.Unmarshal(in.Payload, &s); err != nil {
			return "", nil, nil, "", fmt.Errorf("%w: a base64 payload must be a JSON string: %w", ErrNotEnvelope, err)
		}
		payload, err = base64.StdEncoding.DecodeString(s)
		if err != nil {
			return "", nil, nil, "", fmt.Errorf("%w: the payload is not valid base64: %w", ErrNotEnvelope, err)
		}
	default:
		return "", nil, nil, "", fmt.Errorf("%w: payload encoding %q is not one of json, text, base64", ErrNotEnvelope, in.Encoding)
	}
	if len(payload) == 0 {
		payload = nil
	}
	metadata = make(message.Metadata, len(in.Metadata))
	for k, v := range in.Metadata {
		metadata[k] = v
	}
	return *in.UUID, metadata, payload, in.For, nil
}
