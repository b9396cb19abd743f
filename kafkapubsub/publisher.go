package kafkapubsub

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-go/switchyard/schema"
)

// Record headers the adapter reads and writes besides the message metadata.
const (
	// UUIDHeader carries the watermill message UUID. It is not part of the
	// received message's metadata.
	UUIDHeader = "_watermill_message_uuid"
	// RedeliverToHeader marks a copy published on a nack: it names the only
	// consumer group meant to handle it. Subscribers of other groups commit
	// and skip such a copy. It is not part of the received message's metadata.
	RedeliverToHeader = "switchyard-redeliver-to"
)

// ErrClosed is returned by the methods of a closed Publisher or Subscriber.
var ErrClosed = errors.New("kafkapubsub: closed")

// Publisher publishes watermill messages to Kafka topics. It is safe for
// concurrent use.
type Publisher struct {
	cfg    PublisherConfig
	logger watermill.LoggerAdapter
	opts   []kgo.Opt
	conns  *connTracker
	topics *topicCreator

	mu       sync.Mutex
	closed   bool
	acksAll  *kgo.Client // flow topics: acks=all, idempotent
	acksOne  *kgo.Client // other topics: leader ack
	adminCli *kgo.Client
	// senders counts PublishAsync calls that are handing a record to a
	// producer; Close waits for them before it flushes.
	senders sync.WaitGroup

	specsMu sync.RWMutex
	specs   map[string]topicSpec // queue name -> its Kafka topic, for PublishAsync
}

var _ message.Publisher = (*Publisher)(nil)

// NewPublisher returns a Publisher for the cluster in config. It does not
// connect: the first Publish does.
func NewPublisher(config PublisherConfig, logger watermill.LoggerAdapter) (*Publisher, error) {
	config.setDefaults()
	if err := config.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	conns := newConnTracker()
	opts, err := config.clientOpts()
	if err != nil {
		return nil, err
	}
	opts = append(opts, kgo.WithHooks(conns), kgo.WithLogger(kgoLogger{logger}))
	admin, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafkapubsub: creating the admin client: %w", err)
	}
	return &Publisher{
		cfg:      config,
		logger:   logger,
		opts:     opts,
		conns:    conns,
		adminCli: admin,
		topics:   newTopicCreator(kadm.NewClient(admin), config.RequestTimeout),
		specs:    map[string]topicSpec{},
	}, nil
}

// client returns the producer client for spec: acks=all (idempotent) for
// durable topics, leader ack otherwise, as TrustGraph's producers.
func (p *Publisher) client(spec topicSpec) (*kgo.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.clientLocked(spec)
}

// clientLocked is client with p.mu held.
func (p *Publisher) clientLocked(spec topicSpec) (*kgo.Client, error) {
	if p.closed {
		return nil, ErrClosed
	}
	slot := &p.acksOne
	if spec.durable {
		slot = &p.acksAll
	}
	if *slot != nil {
		return *slot, nil
	}
	opts := append([]kgo.Opt{}, p.opts...)
	opts = append(opts,
		kgo.ProducerBatchMaxBytes(MaxMessageBytes),
		kgo.RecordDeliveryTimeout(p.cfg.RequestTimeout),
		kgo.ProducerLinger(0),
	)
	if spec.durable {
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	} else {
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafkapubsub: creating a producer: %w", err)
	}
	*slot = cl
	return cl, nil
}

// Publish sends msgs to topic, a queue name in any form schema.ParseTopic
// accepts (see TopicName), creating the topic first if it does not exist.
// It returns after the broker confirmed every message; the error names each
// message that failed. An error that retrying cannot fix satisfies
// errors.As with *PermanentError.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	spec, err := parseTopic(topic)
	if err != nil {
		return err
	}
	records := make([]*kgo.Record, len(msgs))
	for i, m := range msgs {
		records[i] = producerRecord(spec.name, m)
	}
	return p.produce(context.Background(), spec, records, msgs)
}

// produce ensures the topic, sends records and waits for every result.
func (p *Publisher) produce(ctx context.Context, spec topicSpec, records []*kgo.Record, msgs []*message.Message) error {
	cl, err := p.client(spec)
	if err != nil {
		return err
	}
	if err := p.topics.ensure(ctx, spec); err != nil {
		return err
	}
	results := cl.ProduceSync(ctx, records...)
	var errs []error
	for i, r := range results {
		if r.Err == nil {
			continue
		}
		uuid := ""
		if i < len(msgs) {
			uuid = msgs[i].UUID
		}
		errs = append(errs, classify(fmt.Sprintf("publishing message %d of %d (uuid %s) to %s", i+1, len(records), uuid, spec.name), r.Err))
	}
	return errors.Join(errs...)
}

// producerRecord turns msg into a record: the payload as it is, every
// metadata entry as a UTF-8 header (sorted by key, so equal messages give
// equal records), and the UUID in UUIDHeader. The per-delivery metadata
// schema.DeliveryAttemptKey and RedeliverToHeader are not carried over: they
// describe one delivery of an input, not a new message.
func producerRecord(topic string, msg *message.Message) *kgo.Record {
	r := &kgo.Record{}
	fillRecord(r, topic, msg)
	return r
}

// fillRecord sets r's topic, value and headers as producerRecord describes.
// The header values share one allocation.
func fillRecord(r *kgo.Record, topic string, msg *message.Message) {
	keys := make([]string, 0, len(msg.Metadata))
	size := len(msg.UUID)
	for k, v := range msg.Metadata {
		switch k {
		case schema.DeliveryAttemptKey, RedeliverToHeader, UUIDHeader:
			continue
		}
		keys = append(keys, k)
		size += len(v)
	}
	sort.Strings(keys)
	values := make([]byte, 0, size)
	headers := make([]kgo.RecordHeader, 0, len(keys)+1)
	for _, k := range keys {
		start := len(values)
		values = append(values, msg.Metadata[k]...)
		headers = append(headers, kgo.RecordHeader{Key: k, Value: values[start:len(values):len(values)]})
	}
	start := len(values)
	values = append(values, msg.UUID...)
	headers = append(headers, kgo.RecordHeader{Key: UUIDHeader, Value: values[start:len(values):len(values)]})
	value := []byte(msg.Payload)
	if value == nil {
		value = []byte{}
	}
	r.Topic, r.Value, r.Headers = topic, value, headers
}

// redeliveryRecord is the copy of r published on a nack: the same value and
// headers, with the attempt set to attempt and RedeliverToHeader to group.
func redeliveryRecord(r *kgo.Record, attempt int, group string) *kgo.Record {
	headers := make([]kgo.RecordHeader, 0, len(r.Headers)+2)
	for _, h := range r.Headers {
		if h.Key == schema.DeliveryAttemptKey || h.Key == RedeliverToHeader {
			continue
		}
		headers = append(headers, h)
	}
	headers = append(headers,
		kgo.RecordHeader{Key: schema.DeliveryAttemptKey, Value: []byte(strconv.Itoa(attempt))},
		kgo.RecordHeader{Key: RedeliverToHeader, Value: []byte(group)},
	)
	return &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Headers: headers}
}

// Health returns nil while the publisher's latest connection to every
// broker it used succeeded, else what is wrong. A publisher that has not
// published yet has no connection and is healthy.
func (p *Publisher) Health() error {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return ErrClosed
	}
	return p.conns.health()
}

// Close waits (up to RequestTimeout) for PublishAsync calls that are handing
// a record over, flushes the producers, waiting up to RequestTimeout each
// for the broker's confirmation of every record given to Publish or
// PublishAsync, and closes them; the records still unconfirmed then fail,
// so every PublishAsync's done has been called when Close returns. It is
// idempotent.
func (p *Publisher) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	clients := []*kgo.Client{p.acksAll, p.acksOne, p.adminCli}
	p.mu.Unlock()
	var errs []error
	handed := make(chan struct{})
	go func() {
		p.senders.Wait()
		close(handed)
	}()
	select {
	case <-handed:
	case <-time.After(p.cfg.RequestTimeout):
		// They end once the producers are closed: Produce on a closed
		// client fails the record at once.
		errs = append(errs, fmt.Errorf("kafkapubsub: PublishAsync calls still handing over records after %s", p.cfg.RequestTimeout))
	}
	for _, cl := range clients {
		if cl == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.RequestTimeout)
		if err := cl.Flush(ctx); err != nil {
			errs = append(errs, fmt.Errorf("kafkapubsub: flushing a producer: %w", err))
		}
		cancel()
		cl.Close()
	}
	return errors.Join(errs...)
}

// topicCreator creates topics the way TrustGraph does (one partition,
// replication factor 1, retention.ms by class) the first time the process
// uses them, and remembers which exist.
type topicCreator struct {
	admin   *kadm.Client
	timeout time.Duration

	mu      sync.Mutex
	created map[string]bool
}

func newTopicCreator(admin *kadm.Client, timeout time.Duration) *topicCreator {
	return &topicCreator{admin: admin, timeout: timeout, created: map[string]bool{}}
}

func (t *topicCreator) ensure(ctx context.Context, spec topicSpec) error {
	t.mu.Lock()
	done := t.created[spec.name]
	t.mu.Unlock()
	if done {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	retention := strconv.FormatInt(spec.retention().Milliseconds(), 10)
	resp, err := t.admin.CreateTopic(ctx, 1, 1, map[string]*string{"retention.ms": &retention}, spec.name)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return classify("creating topic "+spec.name, err)
	}
	t.mu.Lock()
	t.created[spec.name] = true
	t.mu.Unlock()
	return nil
}
