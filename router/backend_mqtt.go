package router

import (
	"context"
	"errors"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/urfave/cli/v2"
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
}

func (s *MQTTSettings) setDefaults() {
	if s.Host == "" {
		s.Host = "localhost"
	}
	if s.Port == 0 {
		s.Port = 1883
	}
}

func (s MQTTSettings) validate() error {
	if s.Port < 1 || s.Port > 65535 {
		return errors.New("--mqtt-port must be between 1 and 65535")
	}
	return nil
}

func mqttFlags(s *MQTTSettings) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "mqtt-host", EnvVars: []string{"MQTT_HOST"}, Value: "localhost", Usage: "MQTT broker host", Destination: &s.Host, Category: "MQTT"},
		&cli.IntFlag{Name: "mqtt-port", EnvVars: []string{"MQTT_PORT"}, Value: 1883, Usage: "MQTT broker port", Destination: &s.Port, Category: "MQTT"},
		&cli.StringFlag{Name: "mqtt-username", EnvVars: []string{"MQTT_USERNAME"}, Usage: "MQTT user name", Destination: &s.Username, Category: "MQTT"},
		&cli.StringFlag{Name: "mqtt-password", EnvVars: []string{"MQTT_PASSWORD"}, Usage: "MQTT password", Destination: &s.Password, Category: "MQTT"},
	}
}

func newMQTTBackend(_ context.Context, _ Config, _ watermill.LoggerAdapter) (Backend, error) {
	return nil, errors.New("pubsub backend \"mqtt\" is not built yet")
}
