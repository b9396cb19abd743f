package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/urfave/cli/v2"

	"github.com/switchyard-go/switchyard/backend"
	"github.com/switchyard-go/switchyard/processor"
	"github.com/switchyard-go/switchyard/router"
)

func tailCommand(secrets *[]string) *cli.Command {
	var cfg clientConfig
	var topic, subscription, position string
	var count int
	var timeout time.Duration
	return &cli.Command{
		Name:      "tail",
		Usage:     "write each message of a queue to stdout as one JSON line",
		UsageText: "switchyard tail --topic q1/tg/flow/text-completion-response [--count N] [--subscription S] [--initial-position earliest|latest]",
		Description: "Each line is {\"uuid\":...,\"properties\":{...},\"payload\":<the JSON payload>}. A payload that is not JSON\n" +
			"is written as a string, base64-encoded with \"payload_encoding\":\"base64\" if it is not UTF-8.\n" +
			"Without --subscription, tail reads through a subscription of its own and sees every message;\n" +
			"with it, tail joins that (durable) subscription and competes with its other consumers.\n" +
			"SIGINT or SIGTERM ends tail with status 0, or with 130 or 143 if --count messages had not arrived.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "topic", Aliases: []string{"t"}, Usage: "queue to read, in any accepted form (required)", Destination: &topic},
			&cli.StringFlag{Name: "subscription", Aliases: []string{"s"}, Usage: "subscription name to join (default: a private one)", Destination: &subscription},
			&cli.IntFlag{Name: "count", Aliases: []string{"n"}, Usage: "exit after this many messages (0: run until interrupted)", Destination: &count},
			&cli.StringFlag{Name: "initial-position", Value: string(router.PositionLatest), Usage: "where a new subscription starts: earliest or latest (Pulsar; MQTT keeps no history)", Destination: &position},
			&cli.DurationFlag{Name: "timeout", Usage: "fail if --count messages have not arrived within this time (0: no limit)", Destination: &timeout},
		}, cfg.flags()...),
		Action: func(c *cli.Context) error {
			t, err := parseTopicFlag(topic)
			if err != nil {
				return err
			}
			pos := router.InitialPosition(position)
			if pos != router.PositionEarliest && pos != router.PositionLatest {
				return processor.Usagef("--initial-position %q must be earliest or latest", position)
			}
			if count < 0 {
				return processor.Usagef("--count must not be negative, got %d", count)
			}
			if c.NArg() > 0 {
				return processor.Usagef("unexpected argument %q", c.Args().First())
			}
			if err := cfg.validate(); err != nil {
				return err
			}
			*secrets = append(*secrets, cfg.backend.Secrets()...)
			if cfg.backend.Name == backend.MQTT && c.IsSet("initial-position") {
				fmt.Fprintln(c.App.ErrWriter, "tail: --initial-position has no effect on MQTT, which keeps no history: "+
					"a new subscription starts with the next message published")
			}
			b, err := connect(c.Context, c, &cfg)
			if err != nil {
				return err
			}
			defer b.Close()
			sub, err := b.NewSubscriber(router.SubscribeOptions{
				Subscription: subscription, Exclusive: subscription == "", InitialPosition: pos,
			})
			if err != nil {
				return fmt.Errorf("subscribing to %s: %w", t, err)
			}
			defer sub.Close()
			ctx := c.Context
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			if init, ok := sub.(message.SubscribeInitializer); ok {
				if err := init.SubscribeInitialize(t.String()); err != nil {
					return fmt.Errorf("subscribing to %s: %w", t, err)
				}
			}
			msgs, err := sub.Subscribe(ctx, t.String())
			if err != nil {
				return fmt.Errorf("subscribing to %s: %w", t, err)
			}
			fmt.Fprintf(c.App.ErrWriter, "tail: subscribed to %s\n", t)
			out := bufio.NewWriter(c.App.Writer)
			defer out.Flush()
			seen := 0
			for msg := range msgs {
				if err := writeLine(out, msg); err != nil {
					msg.Nack()
					return fmt.Errorf("writing message %s: %w", msg.UUID, err)
				}
				if err := out.Flush(); err != nil {
					msg.Nack()
					return fmt.Errorf("writing message %s: %w", msg.UUID, err)
				}
				msg.Ack()
				seen++
				if count > 0 && seen >= count {
					return nil
				}
			}
			if timeout > 0 && ctx.Err() != nil && c.Context.Err() == nil {
				return fmt.Errorf("timed out after %s with %d of %d messages", timeout, seen, count)
			}
			if sig := stoppedBy(c.Context); sig != nil && count > 0 {
				// Stopped before --count messages arrived: say so in the
				// exit status. Without --count a signal is the normal end.
				fmt.Fprintf(c.App.ErrWriter, "tail: %d of %d messages; %s\n", seen, count, sig)
				return &reportedError{err: sig}
			}
			return nil
		},
	}
}

type tailLine struct {
	UUID            string            `json:"uuid"`
	Properties      map[string]string `json:"properties"`
	Payload         json.RawMessage   `json:"payload"`
	PayloadEncoding string            `json:"payload_encoding,omitempty"`
}

func writeLine(w io.Writer, msg *message.Message) error {
	line := tailLine{UUID: msg.UUID, Properties: map[string]string(msg.Metadata)}
	if line.Properties == nil {
		line.Properties = map[string]string{}
	}
	switch {
	case json.Valid(msg.Payload):
		line.Payload = compact(msg.Payload)
	case validJSON(msg.Payload) == nil:
		// JSON with NaN or Infinity tokens: pass it through as it is.
		line.Payload = json.RawMessage(msg.Payload)
	case utf8.Valid(msg.Payload):
		b, _ := json.Marshal(string(msg.Payload))
		line.Payload = b
	default:
		b, _ := json.Marshal(base64.StdEncoding.EncodeToString(msg.Payload))
		line.Payload, line.PayloadEncoding = b, "base64"
	}
	b, err := marshalLine(line)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// marshalLine encodes the line without re-validating the raw payload, which
// may carry NaN tokens that encoding/json refuses.
func marshalLine(l tailLine) ([]byte, error) {
	props, err := json.Marshal(l.Properties)
	if err != nil {
		return nil, err
	}
	id, _ := json.Marshal(l.UUID)
	b := make([]byte, 0, len(l.Payload)+len(props)+64)
	b = append(b, `{"uuid":`...)
	b = append(b, id...)
	b = append(b, `,"properties":`...)
	b = append(b, props...)
	b = append(b, `,"payload":`...)
	b = append(b, l.Payload...)
	if l.PayloadEncoding != "" {
		b = append(b, `,"payload_encoding":"`+l.PayloadEncoding+`"`...)
	}
	return append(b, '}'), nil
}

// compact removes insignificant whitespace so each message stays on one line.
func compact(b []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(b))
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}
