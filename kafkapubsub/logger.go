package kafkapubsub

import (
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kgoLogger passes the client library's log lines to a watermill logger,
// one level quieter than the library logs them: the library reports every
// retried connection as an error, and the adapter reports what matters
// through errors and Health.
type kgoLogger struct {
	l watermill.LoggerAdapter
}

func (k kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelInfo }

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	fields := watermill.LogFields{}
	for i := 0; i+1 < len(keyvals); i += 2 {
		fields[fmt.Sprint(keyvals[i])] = keyvals[i+1]
	}
	switch level {
	case kgo.LogLevelError:
		k.l.Info("kafka: "+msg, fields)
	case kgo.LogLevelWarn, kgo.LogLevelInfo:
		k.l.Debug("kafka: "+msg, fields)
	default:
		k.l.Trace("kafka: "+msg, fields)
	}
}
