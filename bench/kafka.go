package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-go/switchyard/backend"
	"github.com/switchyard-go/switchyard/kafkapubsub"
	"github.com/switchyard-go/switchyard/router"
)

// newKafkaHarness runs against Kafka. The raw-sync variant is a loop on
// kafkapubsub's Publisher (Publish returns once the broker confirmed, acks
// from all in-sync replicas) and Subscriber (one group member; each
// Subscribe call a channel of its own; acked offsets committed in the
// background), with the settings the kafka backend gives them; the limit
// loop is franz-go alone (see kafkaLimit). The topics and consumer groups a
// run creates are deleted when it ends.
func newKafkaHarness(cfg kafkapubsub.Config, logger watermill.LoggerAdapter) *adapterHarness {
	return &adapterHarness{
		logger: logger,
		newBackend: func(ctx context.Context, name string) (router.Backend, error) {
			bc := backend.Config{Name: backend.Kafka, ClientName: name}
			bc.Kafka.Config = cfg
			return backend.New(ctx, bc, logger)
		},
		newRawPubSub: func(spec runSpec) (message.Publisher, message.Subscriber, error) {
			c := cfg
			c.ClientID = spec.name
			pub, err := kafkapubsub.NewPublisher(kafkapubsub.PublisherConfig{Config: c}, logger)
			if err != nil {
				return nil, nil, err
			}
			sub, err := kafkapubsub.NewSubscriber(kafkapubsub.SubscriberConfig{Config: c, SubscriptionName: spec.name}, logger)
			if err != nil {
				_ = pub.Close()
				return nil, nil, err
			}
			return pub, sub, nil
		},
		limit: func(ctx context.Context, spec runSpec) (processor, error) {
			return newKafkaLimit(ctx, cfg, spec, logger)
		},
		cleanup: func(specs []runSpec) error { return deleteKafkaTopics(cfg, specs) },
	}
}

// deleteKafkaTopics deletes the topics of the runs (requests, responses,
// the router's poison queue) and the groups of the processor and the
// counter.
func deleteKafkaTopics(cfg kafkapubsub.Config, specs []runSpec) error {
	var topics, groups []string
	for _, s := range specs {
		for _, q := range []string{s.in.String(), s.out.String(), router.PoisonTopic(s.in).String()} {
			name, err := kafkapubsub.TopicName(q)
			if err != nil {
				return err
			}
			topics = append(topics, name)
		}
		groups = append(groups, s.name, s.name+"-counter")
	}
	// Only the PLAINTEXT listener is supported here, as by the benchmark's
	// flags.
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(cfg.BootstrapServers, ",")...))
	if err != nil {
		return fmt.Errorf("deleting the benchmark topics: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	// The groups go first: a group of a deleted topic would keep its
	// offsets until they expire. A group that never committed does not
	// exist, which is no error.
	if _, err := adm.DeleteGroups(ctx, groups...); err != nil {
		return fmt.Errorf("deleting the benchmark consumer groups: %w", err)
	}
	resp, err := adm.DeleteTopics(ctx, topics...)
	if err != nil {
		return fmt.Errorf("deleting the benchmark topics: %w", err)
	}
	for _, r := range resp.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
			return fmt.Errorf("deleting the benchmark topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}
