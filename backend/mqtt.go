package router

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/urfave/cli/v2"

	"github.com/switchyard-go/switchyard/mqttpubsub"
)

// MQTTSettings configure the mqtt backend.
type MQTTSettings struct {
	// Host is the broker host name or address.
	Host string
	// Port is the broker TCP port.
	Port int
	// Username for password authentication; empty for anonymous.
	Username string
	// Password for password authentication. Never logged.
	Password string
	// PasswordFile names a file that holds the password, instead of Password.
	PasswordFile string
	// TLS connects with TLS.
	TLS bool
	// CAFile names a PEM file with the certificate authorities of the
	// broker's certificate. It implies TLS.
	CAFile string
	// ConnectTimeout bounds connecting and logging in.
	ConnectTimeout time.Duration
	// PayloadMode is "envelope" (message id and properties travel with the
	// payload) or "raw" (the payload alone, for plain MQTT devices).
	PayloadMode string
	// ClientID names this replica in the MQTT client ids of its sessions.
	// Replicas of one processor on one broker must each set a different one.
	ClientID string
	// NackDelay is how long a failed message waits before it is handled again.
	NackDelay time.Duration
}

// Defaults of the MQTT settings.
const (
	DefaultMQTTConnectTimeout = 10 * time.Second
	DefaultMQTTNackDelay      = time.Second
)

func (s *MQTTSettings) setDefaults() {
	if s.Host == "" {
		s.Host = "localhost"
	}
	if s.Port == 0 {
		s.Port = 1883
	}
	if s.ConnectTimeout == 0 {
		s.ConnectTimeout = DefaultMQTTConnectTimeout
	}
	if s.PayloadMode == "" {
		s.PayloadMode = string(mqttpubsub.PayloadEnvelope)
	}
	if s.NackDelay == 0 {
		s.NackDelay = DefaultMQTTNackDelay
	}
}

func (s MQTTSettings) validate() error {
	if s.Port < 1 || s.Port > 65535 {
		return errors.New("--mqtt-port must be between 1 and 65535")
	}
	if strings.TrimSpace(s.Host) == "" {
		return errors.New("--mqtt-host is empty")
	}
	if s.Password != "" && s.PasswordFile != "" {
		return errors.New("--mqtt-password and --mqtt-password-file are mutually exclusive")
	}
	if (s.Password != "" || s.PasswordFile != "") && s.Username == "" {
		return errors.New("an MQTT password needs --mqtt-username")
	}
	if s.ConnectTimeout < 0 {
		return errors.New("--mqtt-connect-timeout must not be negative")
	}
	if s.NackDelay < 0 {
		return errors.New("--mqtt-nack-delay must not be negative")
	}
	switch mqttpubsub.PayloadMode(s.PayloadMode) {
	case "", mqttpubsub.PayloadEnvelope, mqttpubsub.PayloadRaw:
	default:
		return errors.New("--mqtt-payload-mode " + strconv.Quote(s.PayloadMode) + " is not one of envelope, raw")
	}
	if strings.ContainsAny(s.ClientID, "/+#\x00") {
		return errors.New("--mqtt-client-id must not contain '/', '+', '#' or NUL")
	}
	return nil
}

func mqttFlags(s *MQTTSettings) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "mqtt-host", EnvVars: []string{"MQTT_HOST"}, Value: "localhost", Usage: "MQTT broker host", Destination: &s.Host, Category: "MQTT"},
		&cli.IntFlag{Name: "mqtt-port", EnvVars: []string{"MQTT_PORT"}, Value: 1883, Usage: "MQTT broker port", Destination: &s.Port, Category: "MQTT"},
		&cli.StringFlag{Name: "mqtt-username", EnvVars: []string{"MQTT_USERNAME"}, Usage: "MQTT user name", Destination: &s.Username, Category: "MQTT"},
		&cli.StringFlag{Name: "mqtt-password", EnvVars: []string{"MQTT_PASSWORD"}, Usage: "MQTT password", Destination: &s.Password, Category: "MQTT"},
		&cli.StringFlag{Name: "mqtt-password-file", EnvVars: []string{"MQTT_PASSWORD_FILE"}, Usage: "file that holds the MQTT password (instead of --mqtt-password)", Destination: &s.PasswordFile, Category: "MQTT"},
		&cli.BoolFlag{Name: "mqtt-tls", EnvVars: []string{"MQTT_TLS"}, Usage: "connect to the MQTT broker with TLS", Destination: &s.TLS, Category: "MQTT"},
		&cli.StringFlag{Name: "mqtt-ca-file", EnvVars: []string{"MQTT_CA_FILE"}, Usage: "PEM file with the authorities that sign the broker's TLS certificate (implies --mqtt-tls)", Destination: &s.CAFile, Category: "MQTT"},
		&cli.DurationFlag{Name: "mqtt-connect-timeout", EnvVars: []string{"MQTT_CONNECT_TIMEOUT"}, Value: DefaultMQTTConnectTimeout, Usage: "how long connecting and logging in to the MQTT broker may take", Destination: &s.ConnectTimeout, Category: "MQTT"},
		&cli.StringFlag{Name: "mqtt-payload-mode", EnvVars: []string{"MQTT_PAYLOAD_MODE"}, Value: string(mqttpubsub.PayloadEnvelope), Usage: "envelope (message id and properties travel in a JSON envelope) or raw (the payload alone, for plain MQTT devices; properties are lost)", Destination: &s.PayloadMode, Category: "MQTT"},
		&cli.StringFlag{Name: "mqtt-client-id", EnvVars: []string{"MQTT_CLIENT_ID"}, Usage: "name of this replica in its MQTT client ids (default: the host name); replicas of one processor on one host need different ones", Destination: &s.ClientID, Category: "MQTT"},
		&cli.DurationFlag{Name: "mqtt-nack-delay", EnvVars: []string{"MQTT_NACK_DELAY"}, Value: DefaultMQTTNackDelay, Usage: "how long a failed message waits before it is handled again", Destination: &s.NackDelay, Category: "MQTT"},
	}
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
	return mqttpubsub.ConnectionConfig{
		Broker:         s.brokerURL(),
		Username:       s.Username,
		Password:       s.Password,
		PasswordFile:   s.PasswordFile,
		CAFile:         s.CAFile,
		ConnectTimeout: s.ConnectTimeout,
	}
}

// mqttBackend carries messages through an MQTT broker with mqttpubsub: one
// publisher connection, and subscribers whose subscriptions with a name are
// MQTT shared subscriptions over persistent sessions.
type mqttBackend struct {
	cfg       Config
	settings  MQTTSettings
	logger    watermill.LoggerAdapter
	publisher *mqttpubsub.Publisher
}

func newMQTTBackend(_ context.Context, cfg Config, logger watermill.LoggerAdapter) (Backend, error) {
	s := cfg.MQTT
	s.setDefaults()
	secrets := []string{s.Password}
	if s.PasswordFile != "" {
		if b, err := os.ReadFile(s.PasswordFile); err == nil {
			secrets = append(secrets, strings.TrimRight(string(b), "\r\n"))
		}
	}
	mqttpubsub.RoutePahoLogs(logger, cfg.LogLevel == "debug", secrets...)

	clientID := s.ClientID
	if clientID == "" {
		clientID = cfg.ID
	}
	if clientID == "" {
		clientID = "switchyard"
	}
	pub, err := mqttpubsub.NewPublisher(mqttpubsub.PublisherConfig{
		ConnectionConfig: s.connection(),
		ClientID:         clientID + "-pub-" + watermill.NewShortUUID(),
		PayloadMode:      mqttpubsub.PayloadMode(s.PayloadMode),
	}, logger)
	if err != nil {
		return nil, err
	}
	return &mqttBackend{cfg: cfg, settings: s, logger: logger, publisher: pub}, nil
}

func (b *mqttBackend) Name() string { return BackendMQTT }

func (b *mqttBackend) Publisher() message.Publisher { return b.publisher }

// NewSubscriber returns a subscriber for opts. A named subscription is an
// MQTT shared subscription ($share/{name}/{topic}) over a persistent
// session, so the processors with that name share the messages and keep the
// ones published while they are away. An exclusive or unnamed one sees every
// message from the moment it subscribes. MQTT keeps no history, so a new
// subscription starts with the next message whatever InitialPosition says.
func (b *mqttBackend) NewSubscriber(opts SubscribeOptions) (message.Subscriber, error) {
	cfg := mqttpubsub.SubscriberConfig{
		ConnectionConfig: b.settings.connection(),
		PayloadMode:      mqttpubsub.PayloadMode(b.settings.PayloadMode),
		NackDelay:        b.settings.NackDelay,
		ClientID:         b.settings.ClientID,
	}
	if opts.Exclusive || opts.Subscription == "" {
		if cfg.ClientID == "" {
			cfg.ClientID = b.cfg.ID
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
	return mqttpubsub.NewSubscriber(cfg, b.logger)
}

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
