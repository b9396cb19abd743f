package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
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

// batchLinger is how long the first line of a partial batch waits for more
// lines before the batch is sent, so that a slow producer's lines go out at
// once while a fast one still fills whole batches.
const batchLinger = 50 * time.Millisecond

// stopGrace is how long publish, once stopped, waits for a read in
// progress to hand over what it has read.
const stopGrace = 100 * time.Millisecond

// progressInterval is how often a long publish reports its count.
const progressInterval = 5 * time.Second

func publishCommand(secrets *[]string) *cli.Command {
	var cfg clientConfig
	var topic, text string
	var props cli.StringSlice
	var batch int
	var autoID, envelope bool
	return &cli.Command{
		Name:  "publish",
		Usage: "publish each JSON line of stdin as one message",
		UsageText: "switchyard publish --topic q1/tg/flow/text-completion-request [--property k=v ...] < requests.jsonl\n" +
			"switchyard publish --topic q1/tg/flow/text-completion-request -m '{\"prompt\":\"hello\"}'",
		Description: "Invalid lines are reported with their line number and skipped; the rest are published.\n" +
			"From a terminal each line is sent when it is entered; from a pipe or file lines are sent in\n" +
			"batches of --batch, and a partial batch at most 50ms after its first line was read.\n" +
			"At the end one line reports how many messages the broker confirmed. On SIGINT or SIGTERM\n" +
			"publish stops reading, sends what it has read, reports, and exits with 130 or 143.\n" +
			"The exit status is 1 if any line was invalid or a publish failed, 2 for a usage mistake.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "topic", Aliases: []string{"t"}, Usage: "queue to publish to, in any accepted form (required)", Destination: &topic},
			&cli.StringFlag{Name: "message", Aliases: []string{"m"}, Usage: "publish this one JSON message instead of reading stdin", Destination: &text},
			&cli.StringSliceFlag{Name: "property", Aliases: []string{"p"}, Usage: "message property `k=v` set on every message (repeatable)", Destination: &props},
			&cli.BoolFlag{Name: "auto-id", Value: true, Usage: "give each message a fresh UUID in its id property unless --property sets one", Destination: &autoID},
			&cli.BoolFlag{Name: "envelope", Usage: "each line is a message as tail writes it: {\"properties\":{...},\"payload\":...}", Destination: &envelope},
			&cli.IntFlag{Name: "batch", Value: 100, Usage: "messages per publish call from a pipe or file (sent pipelined)", Destination: &batch},
		}, cfg.flags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return processor.Usagef("unexpected argument %q (the messages come from stdin or --message)", c.Args().First())
			}
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
			if err := cfg.validate(); err != nil {
				return err
			}
			*secrets = append(*secrets, cfg.backend.Secrets()...)
			p := publisher{
				topic: t.String(), props: properties, autoID: autoID && properties[middleware.IDProperty] == "",
				batch: batch, linger: batchLinger, errw: c.App.ErrWriter, envelope: envelope,
			}
			var single *message.Message
			if c.IsSet("message") {
				if single, err = p.message([]byte(text)); err != nil {
					return processor.Usagef("--message %q: %v", text, err)
				}
			} else if isTerminal(c.App.Reader) {
				p.batch = 1
			}
			backend, err := connect(c.Context, c, &cfg)
			if err != nil {
				return err
			}
			defer backend.Close()
			p.pub = backend.Publisher()
			if single != nil {
				return p.publishOne(single)
			}
			return p.run(c.Context, c.App.Reader)
		},
	}
}

// isTerminal reports whether r is a terminal (a character device).
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
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
	batch    int           // messages per publish call
	linger   time.Duration // longest wait of a partial batch for more lines
	errw     io.Writer
	envelope bool

	start      time.Time
	lastReport time.Time
	confirmed  int
	invalid    int
}

// inputLine is one line of input, numbered from 1, or the error that ended
// the input.
type inputLine struct {
	n    int
	text []byte
	err  error
}

// errStopped is what a stoppableReader returns once it is stopped.
var errStopped = errors.New("stopped reading")

// stoppableReader is a reader that can be stopped between two reads: once
// stopped, Read returns errStopped. A read that is waiting for input when
// stop is called is left to finish on its own.
type stoppableReader struct {
	r       io.Reader
	mu      sync.Mutex
	stopped bool
	reading bool
}

// Read reads from the underlying reader unless the reader is stopped.
func (s *stoppableReader) Read(p []byte) (int, error) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return 0, errStopped
	}
	s.reading = true
	s.mu.Unlock()
	n, err := s.r.Read(p)
	s.mu.Lock()
	s.reading = false
	s.mu.Unlock()
	return n, err
}

// stop stops the reader and reports whether a read was in progress.
func (s *stoppableReader) stop() (reading bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	return s.reading
}

func (s *stoppableReader) isStopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

// readLines sends each line of r on lines and closes it at the end of the
// input, after sending the read error if there was one. Once r is stopped,
// it sends the complete lines it has read and ends; a line cut short is
// dropped. It also ends when done is closed.
func readLines(r *stoppableReader, lines chan<- inputLine, done <-chan struct{}) {
	defer close(lines)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxLine)
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if atEOF && r.isStopped() {
			// Not the end of the input: what follows the last newline
			// is the start of a line, not a line.
			return bufio.ScanLines(data, false)
		}
		return bufio.ScanLines(data, atEOF)
	})
	n := 0
	send := func(l inputLine) bool {
		select {
		case lines <- l:
			return true
		case <-done:
			return false
		}
	}
	for sc.Scan() {
		n++
		if !send(inputLine{n: n, text: append([]byte(nil), sc.Bytes()...)}) {
			return
		}
	}
	err := sc.Err()
	switch {
	case err == nil || errors.Is(err, errStopped):
	case errors.Is(err, bufio.ErrTooLong):
		send(inputLine{n: n + 1, err: fmt.Errorf("line %d is longer than %d bytes", n+1, maxLine)})
	default:
		send(inputLine{n: n + 1, err: err})
	}
}

// run publishes each line of r until the end of the input or until ctx is
// done. Then it sends every complete line it has read, and reports how many
// messages the broker confirmed in one summary line.
func (p *publisher) run(ctx context.Context, r io.Reader) error {
	p.start = time.Now()
	p.lastReport = p.start
	in := &stoppableReader{r: r}
	lines := make(chan inputLine, 64)
	done := make(chan struct{})
	defer close(done)
	go readLines(in, lines, done)

	pending := make([]*message.Message, 0, p.batch)
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		err := p.send(pending)
		pending = pending[:0]
		return err
	}
	// linger fires when the oldest message of a partial batch has waited
	// long enough; it runs only while such a batch exists.
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	defer linger.Stop()
	var readErr error
	handle := func(l inputLine) error {
		if l.err != nil {
			readErr = l.err
			return nil
		}
		if len(bytes.TrimSpace(l.text)) == 0 {
			return nil
		}
		msg, err := p.message(l.text)
		if err != nil {
			p.invalid++
			fmt.Fprintf(p.errw, "publish: line %d: %v\n", l.n, err)
			return nil
		}
		pending = append(pending, msg)
		switch {
		case len(pending) >= p.batch:
			linger.Stop()
			return flush()
		case len(pending) == 1:
			linger.Reset(p.linger)
		}
		return nil
	}

	var cause error
loop:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				break loop
			}
			if err := handle(l); err != nil {
				return err
			}
		case <-linger.C:
			if err := flush(); err != nil {
				return err
			}
		case <-ctx.Done():
			cause = context.Cause(ctx)
			// Stop reading, but send every complete line already read.
			// The reader hands over the complete lines it holds and ends
			// at its next read. A read in progress is given stopGrace to
			// return what it has: it may have returned just now, or it
			// may wait for input that never comes.
			var grace <-chan time.Time
			if in.stop() {
				grace = time.After(stopGrace)
			}
		drain:
			for {
				select {
				case l, ok := <-lines:
					if !ok {
						break drain
					}
					if err := handle(l); err != nil {
						return err
					}
				case <-grace:
					break drain
				}
			}
			break loop
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if readErr != nil {
		p.summary("")
		return fmt.Errorf("reading stdin: %w", readErr)
	}
	return p.finish(cause)
}

// publishOne publishes msg alone.
func (p *publisher) publishOne(msg *message.Message) error {
	p.start = time.Now()
	p.lastReport = p.start
	if err := p.send([]*message.Message{msg}); err != nil {
		return err
	}
	return p.finish(nil)
}

// send publishes msgs in one call and counts them once the broker has
// confirmed them.
func (p *publisher) send(msgs []*message.Message) error {
	if err := p.pub.Publish(p.topic, msgs...); err != nil {
		return fmt.Errorf("publishing to %s after %d confirmed messages: %w", p.topic, p.confirmed, err)
	}
	p.confirmed += len(msgs)
	if time.Since(p.lastReport) >= progressInterval {
		p.lastReport = time.Now()
		fmt.Fprintf(p.errw, "publish: %d confirmed so far\n", p.confirmed)
	}
	return nil
}

// finish writes the summary line and returns the command's result: the
// signal that stopped it (cause), or an error if lines were invalid.
func (p *publisher) finish(cause error) error {
	var sig *signalError
	if errors.As(cause, &sig) {
		p.summary("; " + sig.Error() + " before the end of the input")
		return &reportedError{err: sig}
	}
	if cause != nil {
		p.summary("; stopped before the end of the input")
		return &reportedError{err: cause}
	}
	p.summary("")
	if p.invalid > 0 {
		return fmt.Errorf("%d invalid lines were skipped", p.invalid)
	}
	return nil
}

func (p *publisher) summary(suffix string) {
	fmt.Fprintf(p.errw, "publish: %d confirmed to %s, %d invalid lines, in %s%s\n",
		p.confirmed, p.topic, p.invalid, time.Since(p.start).Round(time.Millisecond), suffix)
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
