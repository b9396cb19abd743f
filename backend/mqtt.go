package backend

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/switchyard-go/switchyard/mqttpubsub"
	"github.com/switchyard-go/switchyard/router"
)

// MQTTSettings configure the mqtt backend. The connection settings other
// than the broker address are the adapter's own, with its defaults.
type MQTTSettings struct {
	// Host is the broker host name or address. Default localhost.
	Host string
	// Port is the broker TCP port. Default 1883.
	Port int
	// TLS connects with TLS (implied by CAFile).
	TLS bool
	// ConnectionConfig holds the credentials, the CA file and the timeouts;
	// its Broker field is ignored: Host, Port and TLS make the address.
	mqttpubsub.ConnectionConfig
	// PayloadMode is "envelope" (message id and properties travel with the
	// payload) or "raw" (the payload alone, for plain MQTT devices).
	PayloadMode string
	// ClientID names this replica in the MQTT client ids of its sessions.
	// Replicas of one processor on one broker must each set a different one.
	ClientID string
	// NackDelay is how long a failed message waits before it is handled
	// again. Default mqttpubsub.DefaultNackDelay.
	NackDelay time.Duration
	// MaxUnacked bounds the messages a subscriber holds unacked; when it is
	// full the broker is made to wait. Default mqttpubsub.DefaultMaxUnacked.
	MaxUnacked int
	// MaxPacketSize is the largest packet the broker accepts; a bigger
	// message is a permanent publish error. Default
	// mqttpubsub.DefaultMaxPacketSize.
	MaxPacketSize int
	// ReconnectGrace is how long publishing waits after a reconnection, so
	// that subscribers are back first. Default
	// mqttpubsub.DefaultReconnectGrace.
	ReconnectGrace time.Duration
}

// Defaults of the MQTT settings that the adapter does not define.
const (
	DefaultMQTTHost = "localhost"
	DefaultMQTTPort = 1883
)

func (s *MQTTSettings) setDefaults() {
	if s.Host == "" {
		s.Host = DefaultMQTTHost
	}
	if s.Port == 0 {
		s.Port = DefaultMQTTPort
	}
	if s.PayloadMode == "" {
		s.PayloadMode = string(mqttpubsub.PayloadEnvelope)
	}
}

func (s MQTTSettings) validate() error {
	if s.Port < 0 || s.Port > 65535 {
		return fmt.Errorf("--mqtt-port must be between 1 and 65535, got %d", s.Port)
	}
	if s.Host != "" && strings.TrimSpace(s.Host) == "" {
		return fmt.Errorf("--mqtt-host %q is blank", s.Host)
	}
	if s.Password != "" && s.PasswordFile != "" {
		return errors.New("set --mqtt-password or --mqtt-password-file, not both")
	}
	if (s.Password != "" || s.PasswordFile != "") && s.Username == "" {
		return errors.New("an MQTT password needs --mqtt-username")
	}
	if s.ConnectTimeout < 0 {
		return fmt.Errorf("--mqtt-connect-timeout must not be negative, got %s", s.ConnectTimeout)
	}
	if s.NackDelay < 0 {
		return fmt.Errorf("--mqtt-nack-delay must not be negative, got %s", s.NackDelay)
	}
	if s.MaxUnacked < 0 {
		return fmt.Errorf("--mqtt-max-unacked must be at least 1, got %d", s.MaxUnacked)
	}
	if s.MaxPacketSize < 0 || s.MaxPacketSize > mqttpubsub.DefaultMaxPacketSize {
		return fmt.Errorf("--mqtt-max-packet-size must be between 1 and %d, got %d", mqttpubsub.DefaultMaxPacketSize, s.MaxPacketSize)
	}
	if s.ReconnectGrace < 0 {
		return fmt.Errorf("--mqtt-reconnect-grace must not be negative, got %s", s.ReconnectGrace)
	}
	switch mqttpubsub.PayloadMode(strings.ToLower(s.PayloadMode)) {
	case "", mqttpubsub.PayloadEnvelope, mqttpubsub.PayloadRaw:
	default:
		return fmt.Errorf("--mqtt-payload-mode %q is not one of envelope, raw", s.PayloadMode)
	}
	if strings.ContainsAny(s.ClientID, "/+#\x00") {
		return fmt.Errorf("--mqtt-client-id %q must not contain '/', '+', '#' or NUL", s.ClientID)
	}
	return nil
}

// fileSecrets returns the password read from PasswordFile, if any, so that
// it can be redacted too.
func (s MQTTSettings) fileSecrets() []string {
	if s.PasswordFile == "" {
		return nil
	}
	b, err := os.ReadFile(s.PasswordFile)
	if err != nil {
		return nil
	}
	return []string{strings.TrimRight(string(b), "\r\n")}
}

// brokerURL is the broker address as an MQTT URL.
func (s MQTTSettings) brokerURL() string {
	scheme := "tcp"
	if s.TLS || s.CAFile != "" {
		scheme = "ssl"
	}
	return scheme + "://" + net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
}

func (s MQTTSettings) connection() mqttpubsub.ConnectionConfig {
	c := s.ConnectionConfig
	c.Broker = s.brokerURL()
	return c
}

// mqttBackend carries messages through an MQTT broker with mqttpubsub: one
// publisher connection, and subscribers whose subscriptions with a name are
// MQTT shared subscriptions over persistent sessions.
type mqttBackend struct {
	cfg       Config
	settings  MQTTSettings
	logger    watermill.LoggerAdapter
	publisher *mqttpubsub.Publisher
	health    healthSet
}

func newMQTTBackend(_ context.Context, cfg Config, logger watermill.LoggerAdapter) (router.Backend, error) {
	s := cfg.MQTT
	s.PayloadMode = strings.ToLower(s.PayloadMode)
	mqttpubsub.RoutePahoLogs(logger, cfg.Debug, append([]string{s.Password}, s.fileSecrets()...)...)

	clientID := s.ClientID
	if clientID == "" {
		clientID = cfg.ClientName
	}
	pub, err := mqttpubsub.NewPublisher(mqttpubsub.PublisherConfig{
		ConnectionConfig: s.connection(),
		ClientID:         clientID + "-pub-" + watermill.NewShortUUID(),
		PayloadMode:      mqttpubsub.PayloadMode(s.PayloadMode),
		MaxPacketSize:    s.MaxPacketSize,
		ReconnectGrace:   s.ReconnectGrace,
	}, logger)
	if err != nil {
		return nil, err
	}
	b := &mqttBackend{cfg: cfg, settings: s, logger: logger, publisher: pub}
	b.health.add(pub)
	return b, nil
}

func (b *mqttBackend) Name() string { return MQTT }

func (b *mqttBackend) Publisher() message.Publisher { return b.publisher }

// NewSubscriber returns a subscriber for opts. A named subscription is an
// MQTT shared subscription ($share/{name}/{topic}) over a persistent
// session, so the processors with that name share the messages and keep the
// ones published while they are away. An exclusive or unnamed one sees every
// message from the moment it subscribes. MQTT keeps no history, so a new
// subscription starts with the next message whatever InitialPosition says.
func (b *mqttBackend) NewSubscriber(opts router.SubscribeOptions) (message.Subscriber, error) {
	cfg := mqttpubsub.SubscriberConfig{
		ConnectionConfig: b.settings.connection(),
		PayloadMode:      mqttpubsub.PayloadMode(b.settings.PayloadMode),
		NackDelay:        b.settings.NackDelay,
		ClientID:         b.settings.ClientID,
		MaxUnacked:       b.settings.MaxUnacked,
		AckWindow:        opts.AckWindow,
	}
	if opts.Exclusive || opts.Subscription == "" {
		if cfg.ClientID == "" {
			cfg.ClientID = b.cfg.ClientName
		}
	} else {
		cfg.Group = opts.Subscription
		if cfg.ClientID == "" {
			// Replicas of one processor share its group but each needs
			// its own persistent session; the host name tells them apart
			// and stays the same across restarts.
			cfg.ClientID = replicaName()
		}
	}
	sub, err := mqttpubsub.NewSubscriber(cfg, b.logger)
	if err != nil {
		return nil, err
	}
	b.health.add(sub)
	return healthTracked{Subscriber: sub, set: &b.health}, nil
}

// Health reports whether the publisher and every open subscriber are
// connected.
func (b *mqttBackend) Health() error { return b.health.Health() }

// replicaName returns the host name with the characters MQTT client ids
// here must not contain replaced, or "" if it cannot be read.
func replicaName() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '+' || r == '#' || r == ':' || r == 0 {
			return '-'
		}
		return r
	}, h)
}

func (b *mqttBackend) Close() error {
	return b.publisher.Close()
}
