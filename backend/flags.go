package backend

import (
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/switchyard-go/switchyard/kafkapubsub"
	"github.com/switchyard-go/switchyard/mqttpubsub"
	"github.com/switchyard-go/switchyard/pulsarpubsub"
	"github.com/switchyard-go/switchyard/rabbitmqpubsub"
)

// Flags returns the command-line flags that select and reach a backend,
// bound to cfg, each with its environment variable. Secret flags have no
// default value, so --help never shows a secret.
func Flags(cfg *Config) []cli.Flag {
	flags := []cli.Flag{
		&cli.StringFlag{
			Name: "pubsub-backend", EnvVars: []string{"PUBSUB_BACKEND"}, Value: DefaultName,
			Usage:       "message broker backend: " + strings.Join(Names(), ", ") + " (any case)",
			Destination: &cfg.Name,
		},
	}
	flags = append(flags, pulsarFlags(&cfg.Pulsar)...)
	flags = append(flags, mqttFlags(&cfg.MQTT)...)
	flags = append(flags, rabbitmqFlags(&cfg.RabbitMQ)...)
	return append(flags, kafkaFlags(&cfg.Kafka)...)
}

func pulsarFlags(s *PulsarSettings) []cli.Flag {
	const cat = "Pulsar"
	return []cli.Flag{
		&cli.StringFlag{Name: "pulsar-host", EnvVars: []string{"PULSAR_HOST"}, Value: pulsarpubsub.DefaultURL, Usage: "Pulsar broker URL (pulsar:// or pulsar+ssl://)", Destination: &s.URL, Category: cat},
		// No Value: --help must never show the token.
		&cli.StringFlag{Name: "pulsar-api-key", EnvVars: []string{"PULSAR_API_KEY"}, Usage: "Pulsar token for authentication", Destination: &s.Token, Category: cat},
		&cli.StringFlag{Name: "pulsar-api-key-file", EnvVars: []string{"PULSAR_API_KEY_FILE"}, Usage: "file holding the Pulsar token (read at every connection)", Destination: &s.TokenFile, Category: cat},
		&cli.StringFlag{Name: "pulsar-listener", EnvVars: []string{"PULSAR_LISTENER"}, Usage: "Pulsar advertised listener name", Destination: &s.ListenerName, Category: cat},
		&cli.StringFlag{Name: "pulsar-tls-trust-certs", EnvVars: []string{"PULSAR_TLS_TRUST_CERTS"}, Usage: "PEM file of the CAs of the broker's TLS certificate (pulsar+ssl://)", Destination: &s.TLSTrustCertsFile, Category: cat},
		&cli.BoolFlag{Name: "pulsar-tls-allow-insecure", EnvVars: []string{"PULSAR_TLS_ALLOW_INSECURE"}, Usage: "accept any broker TLS certificate (tests only)", Destination: &s.TLSAllowInsecureConnection, Category: cat},
		&cli.BoolFlag{Name: "pulsar-tls-skip-hostname-verification", EnvVars: []string{"PULSAR_TLS_SKIP_HOSTNAME_VERIFICATION"}, Usage: "do not check that the broker's TLS certificate names its host", Destination: &s.TLSSkipHostnameVerification, Category: cat},
		&cli.DurationFlag{Name: "pulsar-connection-timeout", EnvVars: []string{"PULSAR_CONNECTION_TIMEOUT"}, Value: pulsarpubsub.DefaultConnectionTimeout, Usage: "bound on establishing one broker connection", Destination: &s.ConnectionTimeout, Category: cat},
		&cli.DurationFlag{Name: "pulsar-operation-timeout", EnvVars: []string{"PULSAR_OPERATION_TIMEOUT"}, Value: pulsarpubsub.DefaultOperationTimeout, Usage: "bound on subscribing and creating producers, retries included", Destination: &s.OperationTimeout, Category: cat},
		&cli.DurationFlag{Name: "pulsar-nack-delay", EnvVars: []string{"PULSAR_NACK_DELAY"}, Value: pulsarpubsub.DefaultNackRedeliveryDelay, Usage: "delay before a failed message is delivered again", Destination: &s.NackDelay, Category: cat},
		&cli.IntFlag{Name: "pulsar-receiver-queue-size", EnvVars: []string{"PULSAR_RECEIVER_QUEUE_SIZE"}, Value: pulsarpubsub.DefaultReceiverQueueSize, Usage: "messages each consumer fetches ahead of the handlers", Destination: &s.ReceiverQueueSize, Category: cat},
	}
}

func mqttFlags(s *MQTTSettings) []cli.Flag {
	const cat = "MQTT"
	return []cli.Flag{
		&cli.StringFlag{Name: "mqtt-host", EnvVars: []string{"MQTT_HOST"}, Value: DefaultMQTTHost, Usage: "MQTT broker host", Destination: &s.Host, Category: cat},
		&cli.IntFlag{Name: "mqtt-port", EnvVars: []string{"MQTT_PORT"}, Value: DefaultMQTTPort, Usage: "MQTT broker port", Destination: &s.Port, Category: cat},
		&cli.StringFlag{Name: "mqtt-username", EnvVars: []string{"MQTT_USERNAME"}, Usage: "MQTT user name", Destination: &s.Username, Category: cat},
		&cli.StringFlag{Name: "mqtt-password", EnvVars: []string{"MQTT_PASSWORD"}, Usage: "MQTT password", Destination: &s.Password, Category: cat},
		&cli.StringFlag{Name: "mqtt-password-file", EnvVars: []string{"MQTT_PASSWORD_FILE"}, Usage: "file that holds the MQTT password (instead of --mqtt-password)", Destination: &s.PasswordFile, Category: cat},
		&cli.BoolFlag{Name: "mqtt-tls", EnvVars: []string{"MQTT_TLS"}, Usage: "connect to the MQTT broker with TLS", Destination: &s.TLS, Category: cat},
		&cli.StringFlag{Name: "mqtt-ca-file", EnvVars: []string{"MQTT_CA_FILE"}, Usage: "PEM file with the authorities that sign the broker's TLS certificate (implies --mqtt-tls)", Destination: &s.CAFile, Category: cat},
		&cli.DurationFlag{Name: "mqtt-connect-timeout", EnvVars: []string{"MQTT_CONNECT_TIMEOUT"}, Value: mqttpubsub.DefaultConnectTimeout, Usage: "how long connecting and logging in to the MQTT broker may take", Destination: &s.ConnectTimeout, Category: cat},
		&cli.StringFlag{Name: "mqtt-payload-mode", EnvVars: []string{"MQTT_PAYLOAD_MODE"}, Value: string(mqttpubsub.PayloadEnvelope), Usage: "envelope (message id and properties travel in a JSON envelope) or raw (the payload alone, for plain MQTT devices; properties are lost)", Destination: &s.PayloadMode, Category: cat},
		&cli.StringFlag{Name: "mqtt-client-id", EnvVars: []string{"MQTT_CLIENT_ID"}, Usage: "name of this replica in its MQTT client ids (default: the host name); replicas of one processor on one host need different ones", Destination: &s.ClientID, Category: cat},
		&cli.DurationFlag{Name: "mqtt-nack-delay", EnvVars: []string{"MQTT_NACK_DELAY"}, Value: mqttpubsub.DefaultNackDelay, Usage: "how long a failed message waits before it is handled again", Destination: &s.NackDelay, Category: cat},
		&cli.IntFlag{Name: "mqtt-max-unacked", EnvVars: []string{"MQTT_MAX_UNACKED"}, Value: mqttpubsub.DefaultMaxUnacked, Usage: "messages a subscriber holds unacked; when full, the broker waits", Destination: &s.MaxUnacked, Category: cat},
		&cli.IntFlag{Name: "mqtt-max-packet-size", EnvVars: []string{"MQTT_MAX_PACKET_SIZE"}, Value: mqttpubsub.DefaultMaxPacketSize, Usage: "the broker's largest packet; a bigger message is refused at once", Destination: &s.MaxPacketSize, Category: cat},
		&cli.DurationFlag{Name: "mqtt-reconnect-grace", EnvVars: []string{"MQTT_RECONNECT_GRACE"}, Value: mqttpubsub.DefaultReconnectGrace, Usage: "pause before publishing after a reconnection, so subscribers are back first", Destination: &s.ReconnectGrace, Category: cat},
	}
}

// rabbitmqFlags are named as TrustGraph names them, plus the password file,
// TLS and tuning options.
func rabbitmqFlags(s *RabbitMQSettings) []cli.Flag {
	const cat = "RabbitMQ"
	return []cli.Flag{
		&cli.StringFlag{Name: "rabbitmq-host", EnvVars: []string{"RABBITMQ_HOST"}, Value: rabbitmqpubsub.DefaultHost, Usage: "RabbitMQ broker host", Destination: &s.Host, Category: cat},
		&cli.IntFlag{Name: "rabbitmq-port", EnvVars: []string{"RABBITMQ_PORT"}, Usage: "RabbitMQ AMQP port (default 5672, 5671 with TLS)", Destination: &s.Port, Category: cat},
		&cli.StringFlag{Name: "rabbitmq-username", EnvVars: []string{"RABBITMQ_USERNAME"}, Value: rabbitmqpubsub.DefaultUsername, Usage: "RabbitMQ user", Destination: &s.Username, Category: cat},
		// No Value: --help must never show a password.
		&cli.StringFlag{Name: "rabbitmq-password", EnvVars: []string{"RABBITMQ_PASSWORD"}, Usage: "RabbitMQ password (default guest)", Destination: &s.Password, Category: cat},
		&cli.StringFlag{Name: "rabbitmq-password-file", EnvVars: []string{"RABBITMQ_PASSWORD_FILE"}, Usage: "file holding the RabbitMQ password (read at every connection)", Destination: &s.PasswordFile, Category: cat},
		&cli.StringFlag{Name: "rabbitmq-vhost", EnvVars: []string{"RABBITMQ_VHOST"}, Value: rabbitmqpubsub.DefaultVHost, Usage: "RabbitMQ virtual host", Destination: &s.VHost, Category: cat},
		&cli.BoolFlag{Name: "rabbitmq-tls", EnvVars: []string{"RABBITMQ_TLS"}, Usage: "connect to RabbitMQ with TLS (amqps)", Destination: &s.TLS.Enabled, Category: cat},
		&cli.StringFlag{Name: "rabbitmq-tls-ca-file", EnvVars: []string{"RABBITMQ_TLS_CA_FILE"}, Usage: "PEM file of the CAs of the broker's TLS certificate", Destination: &s.TLS.CAFile, Category: cat},
		&cli.StringFlag{Name: "rabbitmq-tls-cert-file", EnvVars: []string{"RABBITMQ_TLS_CERT_FILE"}, Usage: "PEM client certificate, for brokers that require one", Destination: &s.TLS.CertFile, Category: cat},
		&cli.StringFlag{Name: "rabbitmq-tls-key-file", EnvVars: []string{"RABBITMQ_TLS_KEY_FILE"}, Usage: "PEM key of the client certificate", Destination: &s.TLS.KeyFile, Category: cat},
		&cli.DurationFlag{Name: "rabbitmq-connect-timeout", EnvVars: []string{"RABBITMQ_CONNECT_TIMEOUT"}, Value: rabbitmqpubsub.DefaultConnectTimeout, Usage: "bound on one connection attempt", Destination: &s.ConnectTimeout, Category: cat},
		&cli.IntFlag{Name: "rabbitmq-prefetch", EnvVars: []string{"RABBITMQ_PREFETCH"}, Value: rabbitmqpubsub.DefaultPrefetch, Usage: "unacknowledged messages sent ahead to each consumer", Destination: &s.Prefetch, Category: cat},
		&cli.DurationFlag{Name: "rabbitmq-nack-delay", EnvVars: []string{"RABBITMQ_NACK_DELAY"}, Value: rabbitmqpubsub.DefaultNackDelay, Usage: "delay before a failed message is queued again", Destination: &s.NackDelay, Category: cat},
	}
}

// kafkaFlags are named as TrustGraph names them, plus the password file, TLS
// and tuning options.
func kafkaFlags(s *KafkaSettings) []cli.Flag {
	const cat = "Kafka"
	return []cli.Flag{
		&cli.StringFlag{Name: "kafka-bootstrap-servers", EnvVars: []string{"KAFKA_BOOTSTRAP_SERVERS"}, Value: DefaultKafkaBootstrapServers, Usage: "comma-separated host:port seed brokers", Destination: &s.BootstrapServers, Category: cat},
		&cli.StringFlag{Name: "kafka-security-protocol", EnvVars: []string{"KAFKA_SECURITY_PROTOCOL"}, Value: kafkapubsub.DefaultSecurityProtocol, Usage: "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", Destination: &s.SecurityProtocol, Category: cat},
		&cli.StringFlag{Name: "kafka-sasl-mechanism", EnvVars: []string{"KAFKA_SASL_MECHANISM"}, Usage: "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with a SASL protocol)", Destination: &s.SASLMechanism, Category: cat},
		&cli.StringFlag{Name: "kafka-sasl-username", EnvVars: []string{"KAFKA_SASL_USERNAME"}, Usage: "SASL user", Destination: &s.SASLUsername, Category: cat},
		&cli.StringFlag{Name: "kafka-sasl-password", EnvVars: []string{"KAFKA_SASL_PASSWORD"}, Usage: "SASL password", Destination: &s.SASLPassword, Category: cat},
		&cli.StringFlag{Name: "kafka-sasl-password-file", EnvVars: []string{"KAFKA_SASL_PASSWORD_FILE"}, Usage: "file holding the SASL password (read at every connection)", Destination: &s.SASLPasswordFile, Category: cat},
		&cli.StringFlag{Name: "kafka-tls-ca-file", EnvVars: []string{"KAFKA_TLS_CA_FILE"}, Usage: "PEM file of the CAs of the brokers' certificates (SSL, SASL_SSL)", Destination: &s.TLSCAFile, Category: cat},
		&cli.StringFlag{Name: "kafka-tls-cert-file", EnvVars: []string{"KAFKA_TLS_CERT_FILE"}, Usage: "PEM client certificate for mutual TLS", Destination: &s.TLSCertFile, Category: cat},
		&cli.StringFlag{Name: "kafka-tls-key-file", EnvVars: []string{"KAFKA_TLS_KEY_FILE"}, Usage: "PEM key of the client certificate", Destination: &s.TLSKeyFile, Category: cat},
		&cli.DurationFlag{Name: "kafka-request-timeout", EnvVars: []string{"KAFKA_REQUEST_TIMEOUT"}, Value: kafkapubsub.DefaultRequestTimeout, Usage: "bound on each request and on a produce being confirmed", Destination: &s.RequestTimeout, Category: cat},
		&cli.DurationFlag{Name: "kafka-nack-delay", EnvVars: []string{"KAFKA_NACK_DELAY"}, Value: kafkapubsub.DefaultNackDelay, Usage: "delay before a failed message is published again", Destination: &s.NackDelay, Category: cat},
	}
}
