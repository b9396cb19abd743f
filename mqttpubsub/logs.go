package mqttpubsub

import (
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill"
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// pahoSink is where paho's log lines go.
type pahoSink struct {
	logger  watermill.LoggerAdapter
	debug   bool
	secrets []string
}

var pahoTarget atomic.Pointer[pahoSink]

const (
	pahoError = iota
	pahoWarn
	pahoDebug
)

// pahoLogger implements paho's Logger by forwarding to the current sink.
// Importing this package installs it as paho's loggers, during package
// initialisation, before any client can run; until RoutePahoLogs is called
// it discards everything, like paho's default loggers.
type pahoLogger struct{ level int }

func init() {
	mqtt.ERROR = pahoLogger{level: pahoError}
	mqtt.CRITICAL = pahoLogger{level: pahoError}
	mqtt.WARN = pahoLogger{level: pahoWarn}
	mqtt.DEBUG = pahoLogger{level: pahoDebug}
}

// RoutePahoLogs sends the log lines of the paho MQTT client library (all of
// its clients in this process) to logger at debug level: errors and warnings
// always, its very detailed debug lines only when debug is true. Every secret (of three
// characters or more) is replaced by "***" in every line. A nil logger
// discards the lines again. It is safe to call at any time.
func RoutePahoLogs(logger watermill.LoggerAdapter, debug bool, secrets ...string) {
	if logger == nil {
		pahoTarget.Store(nil)
		return
	}
	var keep []string
	for _, s := range secrets {
		if len(s) >= 3 {
			keep = append(keep, s)
		}
	}
	pahoTarget.Store(&pahoSink{logger: logger, debug: debug, secrets: keep})
}

func (l pahoLogger) Println(v ...interface{}) {
	sink := l.sink()
	if sink == nil {
		return
	}
	l.emit(sink, strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}

func (l pahoLogger) Printf(format string, v ...interface{}) {
	sink := l.sink()
	if sink == nil {
		return
	}
	l.emit(sink, fmt.Sprintf(format, v...))
}

func (l pahoLogger) sink() *pahoSink {
	sink := pahoTarget.Load()
	if sink == nil || (l.level == pahoDebug && !sink.debug) {
		return nil
	}
	return sink
}

func (l pahoLogger) emit(sink *pahoSink, line string) {
	for _, s := range sink.secrets {
		line = strings.ReplaceAll(line, s, "***")
	}
	// Every paho line goes out at debug level: the adapter reports what an
	// operator acts on (lost connections, refused logins) itself, as one
	// line each, and paho's own errors repeat those events in its words.
	fields := watermill.LogFields{"component": "paho"}
	switch l.level {
	case pahoError:
		sink.logger.Debug("MQTT client error: "+line, fields)
	case pahoWarn:
		sink.logger.Debug("MQTT client warning: "+line, fields)
	default:
		sink.logger.Debug("MQTT client: "+line, fields)
	}
}
