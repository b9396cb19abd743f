package rabbitmqpubsub

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	amqp "github.com/rabbitmq/amqp091-go"
)

// errClosed is returned by operations on a closed Publisher or Subscriber.
var errClosed = errors.New("rabbitmqpubsub: closed")

const minBackoff = 100 * time.Millisecond

// backoff doubles a pause from 100ms up to max, with up to 20% jitter.
type backoff struct {
	max  time.Duration
	next time.Duration
}

func (b *backoff) pause() time.Duration {
	if b.next == 0 {
		b.next = minBackoff
	} else {
		b.next *= 2
	}
	if b.next > b.max {
		b.next = max(b.max, minBackoff)
	}
	return b.next + time.Duration(rand.Int64N(int64(b.next)/5+1))
}

func (b *backoff) reset() { b.next = 0 }

// sleep waits d or until ctx or stop ends; it reports whether d passed.
func sleep(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	}
}

// conn is one AMQP connection that reconnects itself, with backoff, when it
// is lost. Its generation counts the connections made: channels and
// declarations of an older generation are gone.
type conn struct {
	cfg    ConnectionConfig
	logger watermill.LoggerAdapter

	mu        sync.Mutex
	c         *amqp.Connection
	gen       uint64
	up        chan struct{} // closed while connected
	downSince time.Time
	lastErr   error

	closing   chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// newConn dials the broker once (an error when that fails) and keeps the
// connection up until close.
func newConn(cfg ConnectionConfig, logger watermill.LoggerAdapter) (*conn, error) {
	if _, err := cfg.password(); err != nil {
		return nil, err
	}
	if _, err := cfg.tlsConfig(); err != nil {
		return nil, err
	}
	c := &conn{
		cfg:     cfg,
		logger:  logger,
		up:      make(chan struct{}),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	ac, err := c.dial()
	if err != nil {
		return nil, fmt.Errorf("rabbitmqpubsub: connecting to %s: %w", cfg.URL(), err)
	}
	c.setUp(ac)
	go c.keep(ac)
	return c, nil
}

// dial makes one connection attempt.
func (c *conn) dial() (*amqp.Connection, error) {
	pw, err := c.cfg.password()
	if err != nil {
		return nil, err
	}
	tlsCfg, err := c.cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	scheme := "amqp"
	if tlsCfg != nil {
		scheme = "amqps"
	}
	// The URL carries neither credentials nor vhost: both go in the Config,
	// so no password can leak through a URL in an error.
	u := scheme + "://" + net.JoinHostPort(c.cfg.Host, strconv.Itoa(c.cfg.Port)) + "/"
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(c.cfg.ConnectionName)
	ac, err := amqp.DialConfig(u, amqp.Config{
		SASL:            []amqp.Authentication{&amqp.PlainAuth{Username: c.cfg.Username, Password: pw}},
		Vhost:           c.cfg.VHost,
		Heartbeat:       c.cfg.Heartbeat,
		TLSClientConfig: tlsCfg,
		Dial:            amqp.DefaultDial(c.cfg.ConnectTimeout),
		Properties:      props,
	})
	if err != nil {
		return nil, redact(err, pw)
	}
	return ac, nil
}

// redact removes the password from an error's text, should a library ever
// put it there.
func redact(err error, pw string) error {
	if pw == "" || err == nil || !strings.Contains(err.Error(), pw) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), pw, "***"))
}

func (c *conn) setUp(ac *amqp.Connection) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.c = ac
	c.gen++
	c.lastErr = nil
	close(c.up)
}

func (c *conn) setDown(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c == nil {
		c.lastErr = err
		return
	}
	c.c = nil
	c.up = make(chan struct{})
	c.downSince = time.Now()
	c.lastErr = err
}

// keep watches the connection and reconnects when it is lost.
func (c *conn) keep(ac *amqp.Connection) {
	defer close(c.done)
	for {
		closed := ac.NotifyClose(make(chan *amqp.Error, 1))
		select {
		case <-c.closing:
			_ = ac.Close()
			return
		case e := <-closed:
			var err error = errors.New("connection closed")
			if e != nil {
				err = e
			}
			c.setDown(err)
			c.logger.Error("RabbitMQ connection lost; reconnecting", err, watermill.LogFields{"broker": c.cfg.URL()})
		}
		b := backoff{max: c.cfg.ReconnectMaxBackoff}
		for {
			if !sleep(context.Background(), c.closing, b.pause()) {
				return
			}
			next, err := c.dial()
			if err != nil {
				c.setDown(err)
				c.logger.Debug("RabbitMQ reconnect failed", watermill.LogFields{"broker": c.cfg.URL(), "error": err.Error()})
				continue
			}
			ac = next
			c.setUp(ac)
			c.logger.Info("RabbitMQ connection restored", watermill.LogFields{"broker": c.cfg.URL()})
			break
		}
	}
}

// get returns the current connection and its generation, waiting for a
// reconnect while there is none.
func (c *conn) get(ctx context.Context) (*amqp.Connection, uint64, error) {
	for {
		c.mu.Lock()
		ac, gen, up := c.c, c.gen, c.up
		c.mu.Unlock()
		if ac != nil && !ac.IsClosed() {
			return ac, gen, nil
		}
		select {
		case <-up:
		case <-c.closing:
			return nil, 0, errClosed
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("waiting for the connection to %s: %w (%v)", c.cfg.URL(), ctx.Err(), c.health())
		}
		if ac != nil {
			// Closed but not yet noticed by keep: let it catch up.
			if !sleep(ctx, c.closing, 10*time.Millisecond) {
				return nil, 0, fmt.Errorf("waiting for the connection to %s: %w", c.cfg.URL(), context.Cause(ctx))
			}
		}
	}
}

// channel opens a channel on the current connection.
func (c *conn) channel(ctx context.Context) (*amqp.Channel, uint64, error) {
	for {
		ac, gen, err := c.get(ctx)
		if err != nil {
			return nil, 0, err
		}
		ch, err := ac.Channel()
		if err == nil {
			return ch, gen, nil
		}
		if !errors.Is(err, amqp.ErrClosed) {
			return nil, 0, fmt.Errorf("opening a channel on %s: %w", c.cfg.URL(), err)
		}
		if !sleep(ctx, c.closing, 10*time.Millisecond) {
			return nil, 0, fmt.Errorf("opening a channel on %s: %w", c.cfg.URL(), context.Cause(ctx))
		}
	}
}

// health returns nil while connected, else what is wrong.
func (c *conn) health() error {
	select {
	case <-c.closing:
		return errClosed
	default:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c != nil && !c.c.IsClosed() {
		return nil
	}
	if c.c != nil {
		return fmt.Errorf("disconnected from %s", c.cfg.URL())
	}
	return fmt.Errorf("disconnected from %s since %s: %v", c.cfg.URL(), c.downSince.Format("15:04:05"), c.lastErr)
}

func (c *conn) close() {
	c.closeOnce.Do(func() {
		close(c.closing)
		<-c.done
	})
}
