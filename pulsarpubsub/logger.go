package pulsarpubsub

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/apache/pulsar-client-go/pulsar/log"
)

// clientLogger passes the Pulsar client library's log lines to a watermill
// logger, one level quieter: the library logs every producer and consumer it
// creates at info level, which is debug detail for an application. Its debug
// lines are dropped, info becomes debug, warnings become info (marked
// "pulsar_level": "warn") and errors stay errors.
//
// It also remembers the last connection failure (the library logs the
// reason but returns a bare "connection error"), so that errors can say why.
type clientLogger struct {
	logger watermill.LoggerAdapter
	fields watermill.LogFields
	diag   *connDiag
}

func newClientLogger(logger watermill.LoggerAdapter, diag *connDiag) log.Logger {
	return &clientLogger{logger: logger, diag: diag}
}

func (l *clientLogger) with(fields log.Fields) *clientLogger {
	merged := make(watermill.LogFields, len(l.fields)+len(fields))
	for k, v := range l.fields {
		merged[k] = v
	}
	for k, v := range fields {
		merged[k] = v
	}
	return &clientLogger{logger: l.logger, fields: merged, diag: l.diag}
}

// SubLogger returns a logger that adds fields to every line.
func (l *clientLogger) SubLogger(fields log.Fields) log.Logger { return l.with(fields) }

// WithFields returns an entry that adds fields to its line.
func (l *clientLogger) WithFields(fields log.Fields) log.Entry { return l.with(fields) }

// WithField returns an entry that adds one field to its line.
func (l *clientLogger) WithField(name string, value interface{}) log.Entry {
	return l.with(log.Fields{name: value})
}

// WithError returns an entry that adds err to its line.
func (l *clientLogger) WithError(err error) log.Entry {
	return l.with(log.Fields{"error": err})
}

// Debug drops the line. The library's debug lines describe every command
// and every message sent, payload included; formatting them costs more than
// sending the message, so they are not passed on at any level.
// The one exception is the line that says a consumer lost its connection,
// which is passed to the connection tracker.
func (l *clientLogger) Debug(args ...interface{}) {
	if len(args) == 1 {
		if msg, ok := args[0].(string); ok && msg == logConsumerLost {
			l.diag.observe(msg, l.fields)
		}
	}
}

// Info logs at debug level.
func (l *clientLogger) Info(args ...interface{}) { l.info(fmt.Sprint(args...)) }

// Warn logs at info level.
func (l *clientLogger) Warn(args ...interface{}) { l.warn(fmt.Sprint(args...)) }

// Error logs at error level.
func (l *clientLogger) Error(args ...interface{}) { l.error(fmt.Sprint(args...)) }

// Debugf drops the line, like Debug.
func (l *clientLogger) Debugf(string, ...interface{}) {}

// Infof logs at debug level.
func (l *clientLogger) Infof(format string, args ...interface{}) {
	l.info(fmt.Sprintf(format, args...))
}

// Warnf logs at info level.
func (l *clientLogger) Warnf(format string, args ...interface{}) {
	l.warn(fmt.Sprintf(format, args...))
}

// Errorf logs at error level.
func (l *clientLogger) Errorf(format string, args ...interface{}) {
	l.error(fmt.Sprintf(format, args...))
}

func (l *clientLogger) info(msg string) {
	l.diag.observe(msg, l.fields)
	l.logger.Debug(msg, l.fields)
}

func (l *clientLogger) warn(msg string) {
	l.diag.record(msg, l.fields)
	l.diag.observe(msg, l.fields)
	fields := l.with(log.Fields{"pulsar_level": "warn"}).fields
	l.logger.Info(msg, fields)
}

func (l *clientLogger) error(msg string) {
	l.diag.record(msg, l.fields)
	l.diag.observe(msg, l.fields)
	if closingNoise(msg, l.fields) {
		// The library reports nacks and acks that race with a consumer
		// being closed; the messages concerned are redelivered, so this
		// is expected during shutdown and not an operator's concern.
		l.logger.Debug(msg, l.fields)
		return
	}
	var err error
	fields := l.fields
	if e, ok := fields["error"].(error); ok {
		err = e
		fields = l.with(nil).fields
		delete(fields, "error")
	}
	l.logger.Error(msg, err, fields)
}

// closingNoise reports whether a library error only says that a consumer
// was already closing when an ack, nack or flow request reached it.
func closingNoise(msg string, fields watermill.LogFields) bool {
	if strings.Contains(msg, "closing or closed consumer") {
		return true
	}
	err, ok := fields["error"].(error)
	return ok && strings.Contains(err.Error(), "consumer closing or closed")
}

// connDiag remembers the last connection failure the client library logged,
// and which producers and consumers are without a connection.
type connDiag struct {
	mu     sync.Mutex
	at     time.Time
	reason string

	links linkTracker
}

// observe passes a log line to the connection tracker.
func (d *connDiag) observe(msg string, fields watermill.LogFields) {
	if d != nil {
		d.links.observe(msg, fields)
	}
}

// record keeps msg (with its error) when it is a failure logged by a
// connection, which the library marks with the field remote_addr.
func (d *connDiag) record(msg string, fields watermill.LogFields) {
	if d == nil || !strings.HasPrefix(msg, "Failed to") {
		return
	}
	if _, ok := fields["remote_addr"]; !ok {
		return
	}
	reason := strings.TrimSuffix(msg, ".")
	if err, ok := fields["error"]; ok && err != nil {
		reason += ": " + fmt.Sprint(err)
	}
	d.mu.Lock()
	d.at = time.Now()
	d.reason = reason
	d.mu.Unlock()
}

// since returns the last failure recorded at or after t, or "".
func (d *connDiag) since(t time.Time) string {
	if d == nil {
		return ""
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.at.Before(t) {
		return ""
	}
	return d.reason
}
