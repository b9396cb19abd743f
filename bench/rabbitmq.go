package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-go/switchyard/backend"
	"github.com/switchyard-go/switchyard/rabbitmqpubsub"
	"github.com/switchyard-go/switchyard/router"
)

// newRabbitMQHarness runs against RabbitMQ. The raw-sync variant is a loop on
// rabbitmqpubsub's Publisher (confirm mode: Publish returns once the broker
// confirmed) and Subscriber (one consumer per Subscribe call, prefetch 64),
// with the settings the rabbitmq backend gives them; the limit loop is
// amqp091-go alone (see rabbitmqLimit). The queues, exchanges and bindings a
// run declares are deleted when it ends.
func newRabbitMQHarness(conn rabbitmqpubsub.ConnectionConfig, logger watermill.LoggerAdapter) *adapterHarness {
	return &adapterHarness{
		logger: logger,
		newBackend: func(ctx context.Context, name string) (router.Backend, error) {
			cfg := backend.Config{Name: backend.RabbitMQ, ClientName: name}
			cfg.RabbitMQ.ConnectionConfig = conn
			return backend.New(ctx, cfg, logger)
		},
		newRawPubSub: func(spec runSpec) (message.Publisher, message.Subscriber, error) {
			c := conn
			c.ConnectionName = spec.name
			pub, err := rabbitmqpubsub.NewPublisher(rabbitmqpubsub.PublisherConfig{ConnectionConfig: c}, logger)
			if err != nil {
				return nil, nil, err
			}
			sub, err := rabbitmqpubsub.NewSubscriber(rabbitmqpubsub.SubscriberConfig{ConnectionConfig: c, SubscriptionName: spec.name}, logger)
			if err != nil {
				_ = pub.Close()
				return nil, nil, err
			}
			return pub, sub, nil
		},
		limit: func(_ context.Context, spec runSpec) (processor, error) {
			return newRabbitMQLimit(conn, spec, logger)
		},
		cleanup: func(specs []runSpec) error { return deleteRabbitMQQueues(conn, specs) },
	}
}

// deleteRabbitMQQueues deletes the queues and exchanges of the runs: the
// processor's and the counter's queues, the router's poison queue, and
// their exchanges. A missing one is not an error.
func deleteRabbitMQQueues(conn rabbitmqpubsub.ConnectionConfig, specs []runSpec) error {
	var queues, exchanges []string
	for _, s := range specs {
		poison := router.PoisonTopic(s.in)
		for _, q := range []struct {
			topic, subscription string
		}{{s.in.String(), s.name}, {s.out.String(), s.name + "-counter"}, {poison.String(), router.PoisonSubscription}} {
			w, err := rabbitmqpubsub.WireOf(q.topic)
			if err != nil {
				return err
			}
			queues = append(queues, w.QueueName(q.subscription))
			exchanges = append(exchanges, w.Exchange)
		}
	}
	ac, err := amqp.DialConfig(conn.URL(), amqp.Config{
		SASL: []amqp.Authentication{&amqp.PlainAuth{Username: conn.Username, Password: conn.Password}},
		Dial: amqp.DefaultDial(10 * time.Second),
	})
	if err != nil {
		return fmt.Errorf("deleting the benchmark queues: connecting to %s: %w", conn.URL(), err)
	}
	defer ac.Close()
	// A failed operation closes its channel: each gets a channel of its own.
	do := func(op func(*amqp.Channel) error) error {
		ch, err := ac.Channel()
		if err != nil {
			return err
		}
		defer ch.Close()
		err = op(ch)
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return nil
		}
		return err
	}
	for _, q := range queues {
		if err := do(func(ch *amqp.Channel) error { _, err := ch.QueueDelete(q, false, false, false); return err }); err != nil {
			return fmt.Errorf("deleting the benchmark queue %s: %w", q, err)
		}
	}
	for _, x := range exchanges {
		if err := do(func(ch *amqp.Channel) error { return ch.ExchangeDelete(x, false, false) }); err != nil {
			return fmt.Errorf("deleting the benchmark exchange %s: %w", x, err)
		}
	}
	return nil
}
