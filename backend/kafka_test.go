package backend

import (
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/switchyard-go/switchyard/internal/brokertest"
)

// A processor on Kafka answers a TrustGraph-style request/response pair.
func TestKafkaBackendRunsAProcessor(t *testing.T) {
	cfg := Config{Name: "KAFKA", ClientName: "kafka-test-" + watermill.NewShortUUID()}
	cfg.Kafka.BootstrapServers = brokertest.Env(t, "SWITCHYARD_KAFKA_BOOTSTRAP")
	cfg.Kafka.NackDelay = 100 * time.Millisecond
	roundTrip(t, cfg, Kafka)
}

func TestKafkaSettingsValidation(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--kafka-security-protocol", "CARRIER_PIGEON"}, "CARRIER_PIGEON"},
		{[]string{"--kafka-sasl-password", "p", "--kafka-sasl-password-file", "f"}, "not both"},
	}
	for _, c := range cases {
		cfg := parseFlags(t, append([]string{"--pubsub-backend", "kafka"}, c.args...)...)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v, want one line with %q", c.args, err, c.want)
		}
	}
	cfg := parseFlags(t, "--pubsub-backend", "kafka", "--kafka-security-protocol", "SASL_PLAINTEXT", "--kafka-sasl-mechanism", "PLAIN",
		"--kafka-sasl-username", "u", "--kafka-sasl-password", "s3cret-pw")
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if a := cfg.Address(); strings.Contains(a, "s3cret") || a != "kafka://localhost:9092" {
		t.Fatalf("address %q", a)
	}
}
