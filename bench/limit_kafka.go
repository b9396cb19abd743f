package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-go/switchyard/kafkapubsub"
	"github.com/switchyard-go/switchyard/middleware"
)

// Settings of the Kafka limit loop.
var (
	// kafkaLimitLinger is the producer's linger: how long a partition's
	// records wait for more before a request is built (franz-go sends what
	// gathered while a request is in flight in the next one either way).
	kafkaLimitLinger = time.Duration(0)
	// kafkaLimitCommitEvery is how often the marked offsets are committed.
	kafkaLimitCommitEvery = 100 * time.Millisecond
)

// kafkaTimeout bounds creating the topics, joining the group and the final
// flush and commit of the Kafka limit loop.
const kafkaTimeout = 30 * time.Second

// kafkaLimit is the limit loop on Kafka: franz-go alone, one client that is
// a member of the request topic's consumer group and the producer of the
// responses (acks from all in-sync replicas, idempotent, as the adapter
// produces to a flow topic). One loop takes the fetched requests in order,
// does the work and produces each response without waiting; the response's
// promise marks the request's offset for commit, and marked offsets are
// committed every kafkaLimitCommitEvery. At most spec.window requests are
// unconfirmed. A failed produce is logged; the request is then not
// answered.
type kafkaLimit struct {
	client *kgo.Client
	window slots
	done   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	err    error
}

func newKafkaLimit(ctx context.Context, cfg kafkapubsub.Config, spec runSpec, logger watermill.LoggerAdapter) (processor, error) {
	inTopic, err := kafkapubsub.TopicName(spec.in.String())
	if err != nil {
		return nil, err
	}
	outTopic, err := kafkapubsub.TopicName(spec.out.String())
	if err != nil {
		return nil, err
	}
	seeds := strings.Split(cfg.BootstrapServers, ",")
	if err := createKafkaTopics(ctx, seeds, inTopic, outTopic); err != nil {
		return nil, err
	}
	assigned := make(chan struct{})
	var assignOnce sync.Once
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(seeds...),
		kgo.ClientID(spec.name),
		kgo.ConsumerGroup(spec.name),
		kgo.ConsumeTopics(inTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(kafkaLimitCommitEvery),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
			assignOnce.Do(func() { close(assigned) })
		}),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(kafkaLimitLinger),
		kgo.DefaultProduceTopic(outTopic),
	)
	if err != nil {
		return nil, fmt.Errorf("creating the Kafka client: %w", err)
	}
	pctx, cancel := context.WithCancel(context.Background())
	p := &kafkaLimit{client: cl, window: newSlots(spec.window), done: make(chan struct{}), cancel: cancel}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.loop(pctx, logger)
	}()
	// Return once the group gave this member the partition, as the other
	// variants return once they consume.
	t := time.NewTimer(kafkaTimeout)
	defer t.Stop()
	select {
	case <-assigned:
		return p, nil
	case <-t.C:
		err = fmt.Errorf("no partition of %s assigned within %s", inTopic, kafkaTimeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	_ = p.Stop()
	return nil, err
}

// createKafkaTopics creates the topics as the adapter does (one partition,
// the broker's replication factor, 7 days of retention), unless they exist.
func createKafkaTopics(ctx context.Context, seeds []string, topics ...string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return fmt.Errorf("creating the Kafka admin client: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, kafkaTimeout)
	defer cancel()
	retention := strconv.FormatInt(kafkapubsub.FlowRetention.Milliseconds(), 10)
	resp, err := kadm.NewClient(cl).CreateTopics(ctx, 1, -1, map[string]*string{"retention.ms": &retention}, topics...)
	if err != nil {
		return fmt.Errorf("creating the topics %s: %w", strings.Join(topics, ", "), err)
	}
	for _, r := range resp.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("creating the topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}

func (p *kafkaLimit) loop(ctx context.Context, logger watermill.LoggerAdapter) {
	for {
		fetches := p.client.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			logger.Error("Kafka limit loop: fetching failed", err, watermill.LogFields{"topic": topic, "partition": partition})
		})
		for it := fetches.RecordIter(); !it.Done(); {
			in := it.Next()
			resp, err := EchoPayload(in.Value)
			if err != nil {
				logger.Error("Kafka limit loop: bad request", err, nil)
				p.client.MarkCommitRecords(in)
				continue
			}
			if !p.window.acquire(p.done) {
				return
			}
			var id []byte
			for _, h := range in.Headers {
				if h.Key == middleware.IDProperty {
					id = h.Value
				}
			}
			out := &kgo.Record{Value: resp, Headers: []kgo.RecordHeader{
				{Key: middleware.IDProperty, Value: id},
				{Key: kafkapubsub.UUIDHeader, Value: []byte(uuid.NewString())},
			}}
			// The promises of one partition run in order, so the marks only
			// move forward.
			p.client.Produce(context.Background(), out, func(_ *kgo.Record, err error) {
				if err != nil {
					logger.Error("Kafka limit loop: producing failed", err, nil)
				} else {
					p.client.MarkCommitRecords(in)
				}
				p.window.release()
			})
		}
	}
}

// Stop ends the loop, waits for the responses on their way, commits the
// offsets of the requests they answer and closes the client.
func (p *kafkaLimit) Stop() error {
	p.once.Do(func() {
		close(p.done)
		p.cancel()
		p.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), kafkaTimeout)
		defer cancel()
		if err := p.client.Flush(ctx); err != nil {
			p.err = fmt.Errorf("waiting for the responses: %w", err)
		}
		if err := p.client.CommitMarkedOffsets(ctx); err != nil && p.err == nil {
			p.err = fmt.Errorf("committing the offsets: %w", err)
		}
		p.client.Close()
	})
	return p.err
}

// PID is 0: the loop runs in this process.
func (p *kafkaLimit) PID() int { return 0 }
