package bench

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"

	proc "github.com/switchyard-go/switchyard/processor"
)

// openHarness connects to backend for one run.
func (e *engine) openHarness(ctx context.Context, backend string) (harness, error) {
	logger := e.logger()
	switch backend {
	case BackendMemory:
		return newMemoryHarness(ctx, logger)
	case BackendMQTT:
		return newMQTTHarness(e.cfg.MQTTAddr, logger)
	case BackendPulsar:
		return &pulsarHarness{
			url: e.cfg.PulsarURL, token: e.cfg.PulsarToken, logger: logger,
			python: pythonSettings{python: e.cfg.Python, script: e.cfg.PythonScript, log: e.cfg.Log},
		}, nil
	case BackendRabbitMQ:
		return newRabbitMQHarness(e.cfg.RabbitMQ, logger), nil
	case BackendKafka:
		return newKafkaHarness(e.cfg.Kafka, logger), nil
	default:
		return nil, fmt.Errorf("unknown backend %q", backend)
	}
}

// logger returns the watermill logger of the processors under test: warnings
// and errors only, to Config.Log.
func (e *engine) logger() watermill.LoggerAdapter {
	return proc.WatermillLogger(proc.NewLogger(e.cfg.Log, "warn"))
}
