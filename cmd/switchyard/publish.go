package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/urfave/cli/v2"

	"github.com/switchyard-go/switchyard/middleware"
	"github.com/switchyard-go/switchyard/processor"
	"github.com/switchyard-go/switchyard/schema"
)

// maxLine bounds one input line (one message); bigger lines are reported and skipped.
const maxLine = 64 << 20

func publishCommand() *cli.Command {
	var cfg clientConfig
	var topic string
	var props cli.StringSlice
	var batch int
	var autoID, envelope bool
	return &cli.Command{
		Name:      "publish",
		Usage:     "publish each JSON line of stdin as one message",
		UsageText: "switchyard publish --topic q1/tg/flow/text-completion-request [--property k=v ...] < requests.jsonl",
		Description: "Invalid lines are reported with their line number and skipped; the rest are published.\n" +
			"The exit status is 1 if any line was invalid or a publish failed.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "topic", Aliases: []string{"t"}, Usage: "queue to publish to, in any accepted form (required)", Destination: &topic},
			&cli.StringSliceFlag{Name: "property", Aliases: []string{"p"}, Usage: "message property `k=v` set on every message (repeatable)", Destination: &props},
			&cli.BoolFlag{Name: "auto-id", Value: true, Usage: "give each message a fresh UUID in its id property unless --property sets one", Destination: &autoID},
			&cli.BoolFlag{Name: "envelope", Usage: "each line is a message as tail writes it: {\"properties\":{...},\"payload\":...}", Destination: &envelope},
			&cli.IntFlag{Name: "batch", Value: 100, Usage: "messages per publish call (sent pipelined)", Destination: &batch},
		}, cfg.flags()...),
		Action: func(c *cli.Context) error {
			t, err := parseTopicFlag(topic)
			if err != nil {
				return err
			}
			properties, err := parseProperties(props.Value())
			if err != nil {
				return err
			}
			if batch < 1 {
				return processor.Usagef("--batch must be at least 1, got %d", batch)
			}
			backend, err := connect(c.Context, c, &cfg)
			if err != nil {
				return err
			}
			defer backend.Close()
			p := publisher{
				pub: backend.Publisher(), topic: t.String(), props: properties, autoID: autoID && properties[middleware.IDProperty] == "",
				batch: batch, errw: c.App.ErrWriter, envelope: envelope,
			}
			return p.run(c.App.Reader)
		},
	}
}

func parseProperties(kvs []string) (map[string]string, error) {
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, processor.Usagef("--property %q must be key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

type publisher struct {
	pub      message.Publisher
	topic    string
	props    map[string]string
	autoID   bool
	batch    int
	errw     io.Writer
	envelope bool

	published, invalid int
}

func (p *publisher) run(r io.Reader) error {
	start := time.Now()
	lastReport := start
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxLine)
	pending := make([]*message.Message, 0, p.batch)
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		if err := p.pub.Publish(p.topic, pending...); err != nil {
			return fmt.Errorf("publishing to %s after %d messages: %w", p.topic, p.published, err)
		}
		p.published += len(pending)
		pending = pending[:0]
		if time.Since(lastReport) >= 5*time.Second {
			lastReport = time.Now()
			fmt.Fprintf(p.errw, "publish: %d published so far\n", p.published)
		}
		return nil
	}
	line := 0
	for sc.Scan() {
		line++
		text := sc.Bytes()
		if len(strings.TrimSpace(string(text))) == 0 {
			continue
		}
		msg, err := p.message(text)
		if err != nil {
			p.invalid++
			fmt.Fprintf(p.errw, "publish: line %d: %v\n", line, err)
			continue
		}
		pending = append(pending, msg)
		if len(pending) >= p.batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("line %d is longer than %d bytes", line+1, maxLine)
		}
		_ = flush()
		return fmt.Errorf("reading stdin: %w", err)
	}
	if err := flush(); err != nil {
		return err
	}
	fmt.Fprintf(p.errw, "publish: %d published to %s, %d invalid lines, in %s\n",
		p.published, p.topic, p.invalid, time.Since(start).Round(time.Millisecond))
	if p.invalid > 0 {
		return fmt.Errorf("%d invalid lines were skipped", p.invalid)
	}
	return nil
}

// message builds the message one input line describes.
func (p *publisher) message(line []byte) (*message.Message, error) {
	payload := line
	var props map[string]string
	if p.envelope {
		var env struct {
			UUID       string            `json:"uuid"`
			Properties map[string]string `json:"properties"`
			Payload    json.RawMessage   `json:"payload"`
		}
		if err := json.Unmarshal(line, &env); err != nil {
			return nil, fmt.Errorf("invalid envelope: %w", err)
		}
		if len(env.Payload) == 0 {
			return nil, errors.New("invalid envelope: no payload")
		}
		payload, props = env.Payload, env.Properties
	}
	if err := validJSON(payload); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	msg := message.NewMessage(watermill.NewUUID(), append([]byte(nil), payload...))
	for k, v := range p.props {
		msg.Metadata.Set(k, v)
	}
	for k, v := range props {
		msg.Metadata.Set(k, v)
	}
	if p.autoID && msg.Metadata.Get(middleware.IDProperty) == "" {
		msg.Metadata.Set(middleware.IDProperty, watermill.NewUUID())
	}
	return msg, nil
}

// validJSON reports whether b is one JSON value, allowing the NaN and
// Infinity tokens that Python writes.
func validJSON(b []byte) error {
	var v any
	return schema.Unmarshal(b, &v)
}
