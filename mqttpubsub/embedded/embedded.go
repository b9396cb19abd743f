package embedded

import (
	"bufio"
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
	mqtt "github.com/mochi-mqtt/server/v2"
	pebblehook "github.com/mochi-mqtt/server/v2/hooks/storage/pebble"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Defaults of Config.
const (
	// DefaultListen is the address the broker listens on when Config.Listen is empty.
	DefaultListen = "127.0.0.1:1883"
	// DefaultMaxInflight is the default Config.MaxInflight.
	DefaultMaxInflight = 1024
	// DefaultMaxSessionMessages is the default Config.MaxSessionMessages.
	DefaultMaxSessionMessages = 10_000_000
	// DefaultMaxSessionBytes is the default Config.MaxSessionBytes (4 GiB).
	DefaultMaxSessionBytes int64 = 4 << 30
	// DefaultWarnEvery is the default Config.WarnEvery.
	DefaultWarnEvery = time.Minute
	// MaxInflightLimit is the largest Config.MaxInflight: packet identifiers
	// are 16 bits, and some are kept for the broker's own messages
	// (retained messages and wills).
	MaxInflightLimit = 65000
)

// maxQoS0Buffer bounds the QoS 0 copies of QoS 1/2 messages waiting for a
// client that subscribed with QoS 0; more are dropped, as QoS 0 allows.
const maxQoS0Buffer = 1 << 16

// ErrDataDirLocked is wrapped by the error of Start when another broker uses
// the data directory.
var ErrDataDirLocked = errors.New("data directory locked")

// DefaultDataDir returns the default Config.DataDir:
// os.UserCacheDir()/switchyard/broker.
func DefaultDataDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("embedded broker: no default data directory (set one, or run in memory): %w", err)
	}
	return filepath.Join(dir, "switchyard", "broker"), nil
}

// Config configures the embedded broker.
type Config struct {
	// Listen is the TCP address to listen on, host:port. A port of 0 picks a
	// free port (see Broker.Addr). Default 127.0.0.1:1883.
	Listen string
	// UsersFile names the users file (see the package documentation). Empty
	// allows anonymous clients.
	UsersFile string
	// Logger receives the broker's log; nil discards it. Warnings are rate
	// limited (see WarnEvery).
	Logger *slog.Logger

	// DataDir is where sessions, subscriptions, queued and retained messages
	// are kept across restarts. Empty means DefaultDataDir(), created if
	// missing. One broker at a time may use a directory: Start fails with
	// ErrDataDirLocked when another holds it.
	DataDir string
	// InMemory keeps everything in memory (DataDir is ignored): nothing
	// survives a restart. The limits below apply all the same.
	InMemory bool
	// SyncWrites makes every accepted message reach the disk (fsync) before
	// its publisher is acknowledged, so it survives a crash of the machine,
	// at the cost of throughput. Without it a message survives a crash or
	// kill of the broker process but not of the machine.
	SyncWrites bool

	// MaxInflight is the most messages handed to a client and not yet
	// acknowledged by it; the rest wait in the session's queue. An MQTT 5
	// client's smaller Receive Maximum wins. Default DefaultMaxInflight, at
	// most MaxInflightLimit.
	MaxInflight int
	// MaxSessionMessages is the most QoS 1/2 messages a session's queue
	// holds (waiting plus in flight); a shared subscription's group has one
	// queue. A publish that would exceed it is refused, never acknowledged
	// and dropped. Default DefaultMaxSessionMessages.
	MaxSessionMessages int
	// MaxSessionBytes is the most bytes of stored messages (payload, topic
	// and properties) a session's queue holds; a publish that would exceed
	// it is refused. Default DefaultMaxSessionBytes.
	MaxSessionBytes int64
	// WarnEvery is the least time between two warnings about the same
	// client and event; the next warning counts the events in between.
	// Default DefaultWarnEvery.
	WarnEvery time.Duration
}

func (c *Config) setDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.MaxSessionMessages == 0 {
		c.MaxSessionMessages = DefaultMaxSessionMessages
	}
	if c.MaxSessionBytes == 0 {
		c.MaxSessionBytes = DefaultMaxSessionBytes
	}
	if c.WarnEvery == 0 {
		c.WarnEvery = DefaultWarnEvery
	}
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("embedded broker: listen address %q is not host:port: %w", c.Listen, err)
	}
	if c.MaxInflight < 1 || c.MaxInflight > MaxInflightLimit {
		return fmt.Errorf("embedded broker: max in-flight messages %d is out of range 1..%d", c.MaxInflight, MaxInflightLimit)
	}
	if c.MaxSessionMessages < 1 {
		return fmt.Errorf("embedded broker: max stored messages per session %d must be at least 1", c.MaxSessionMessages)
	}
	if c.MaxSessionBytes < 1 {
		return fmt.Errorf("embedded broker: max stored bytes per session %d must be at least 1", c.MaxSessionBytes)
	}
	if c.WarnEvery < 0 {
		return fmt.Errorf("embedded broker: warning interval %s is negative", c.WarnEvery)
	}
	return nil
}

// Broker is a running embedded broker.
type Broker struct {
	server   *mqtt.Server
	listener *listeners.TCP
	addr     string
	dataDir  string
	warn     *warnLimiter
	unlock   func()

	closeOnce sync.Once
	closeErr  error
	closed    chan struct{}
}

// Start starts a broker and returns once it accepts connections. When ctx is
// cancelled later, the broker closes itself, as if Close was called.
func Start(ctx context.Context, cfg Config) (b *Broker, err error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	var users map[string]string
	if cfg.UsersFile != "" {
		if users, err = ReadUsersFile(cfg.UsersFile); err != nil {
			return nil, err
		}
	}
	if !cfg.InMemory && cfg.DataDir == "" {
		if cfg.DataDir, err = DefaultDataDir(); err != nil {
			return nil, err
		}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError + 1}))
	}
	warn := newWarnLimiter(logger.Handler(), cfg.WarnEvery)
	logger = slog.New(warn)

	// Undo what was set up so far when a later step fails.
	var cleanup []func()
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()
	cleanup = append(cleanup, warn.close)

	dbOpts := func() *pebble.Options {
		return &pebble.Options{Logger: pebbleLogger{logger}}
	}
	var unlock func()
	var qdb *pebble.DB
	if cfg.InMemory {
		opts := dbOpts()
		opts.FS = vfs.NewMem()
		if qdb, err = pebble.Open("", opts); err != nil {
			return nil, fmt.Errorf("embedded broker: opening the in-memory queue store: %w", err)
		}
	} else {
		if err = os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("embedded broker: creating data directory: %w", err)
		}
		if unlock, err = lockDir(cfg.DataDir); err != nil {
			return nil, err
		}
		cleanup = append(cleanup, unlock)
		path := filepath.Join(cfg.DataDir, "queues")
		if qdb, err = pebble.Open(path, dbOpts()); err != nil {
			return nil, fmt.Errorf("embedded broker: opening the queue store %s: %w", path, err)
		}
	}
	rt, err := newRouter(qdb, cfg.SyncWrites, limits{
		maxInflight: cfg.MaxInflight, maxMessages: cfg.MaxSessionMessages,
		maxBytes: cfg.MaxSessionBytes, maxQoS0Buffer: maxQoS0Buffer,
	}, logger)
	if err != nil {
		_ = qdb.Close()
		return nil, err
	}

	caps := mqtt.NewDefaultServerCapabilities()
	// The router keeps QoS 1/2 messages in its own queues; mochi's in-flight
	// map holds only what the router handed out and the broker's own
	// retained and will messages. Never expire stored messages.
	caps.MaximumInflight = math.MaxUint16
	caps.ReceiveMaximum = math.MaxUint16
	caps.MaximumClientWritesPending = 1 << 16
	caps.MaximumMessageExpiryInterval = 0
	server := mqtt.New(&mqtt.Options{
		Capabilities:           caps,
		Logger:                 logger,
		SysTopicResendInterval: 10,
	})
	rt.server = server
	closeServer := func() { _ = server.Close() }
	// Until the router is added, the server does not stop it.
	stopRouter := func() { _ = rt.Stop() }
	cleanup = append(cleanup, stopRouter)

	if err = server.AddHook(&usersHook{users: users}, nil); err != nil {
		return nil, fmt.Errorf("embedded broker: adding the authentication hook: %w", err)
	}
	if err = server.AddHook(newTakeoverGuard(), nil); err != nil {
		return nil, fmt.Errorf("embedded broker: adding the session guard hook: %w", err)
	}
	// The router goes before the storage hook: mochi asks it (StoredSysInfo)
	// to prune its queues after loading the stored sessions.
	if err = server.AddHook(rt, nil); err != nil {
		return nil, fmt.Errorf("embedded broker: adding the queue hook: %w", err)
	}
	cleanup[len(cleanup)-1] = closeServer
	if !cfg.InMemory {
		store := &sessionStore{new(pebblehook.Hook)}
		mode := pebblehook.NoSync
		if cfg.SyncWrites {
			mode = pebblehook.Sync
		}
		path := filepath.Join(cfg.DataDir, "sessions")
		if err = server.AddHook(store, &pebblehook.Options{Path: path, Mode: mode, Options: dbOpts()}); err != nil {
			return nil, fmt.Errorf("embedded broker: opening the session store %s: %w", path, err)
		}
		rt.retain = store.OnRetainMessage
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: cfg.Listen})
	if err = server.AddListener(tcp); err != nil {
		return nil, fmt.Errorf("embedded broker: listening on %s: %w", cfg.Listen, err)
	}
	if err = server.Serve(); err != nil {
		return nil, fmt.Errorf("embedded broker: starting: %w", err)
	}
	b = &Broker{server: server, listener: tcp, addr: tcp.Address(), warn: warn, unlock: unlock, closed: make(chan struct{})}
	if !cfg.InMemory {
		b.dataDir = cfg.DataDir
	}
	if ctx.Done() != nil {
		go func() {
			select {
			case <-ctx.Done():
				_ = b.Close()
			case <-b.closed:
			}
		}()
	}
	return b, nil
}

// sessionStore is mochi's pebble storage hook, minus the in-flight
// messages sent to clients: those are in the router's queues, and loading
// them from both stores after a restart would send them twice.
type sessionStore struct{ *pebblehook.Hook }

// OnQosPublish implements mqtt.Hook: it stores only the acknowledgements of
// QoS 2 messages received from clients.
func (s *sessionStore) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, resends int) {
	if pk.FixedHeader.Type != packets.Publish {
		s.Hook.OnQosPublish(cl, pk, sent, resends)
	}
}

// pebbleLogger sends the stores' log to the broker's log: informational
// lines at debug level.
type pebbleLogger struct{ log *slog.Logger }

// Infof implements pebble.Logger.
func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug("embedded broker store: " + fmt.Sprintf(format, args...))
}

// Fatalf implements pebble.Logger. Pebble calls it for corruption it cannot
// go on from; it logs and then stops the process as pebble's own logger does.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.log.Error("embedded broker store: " + fmt.Sprintf(format, args...))
	pebble.DefaultLogger.Fatalf(format, args...)
}

// Addr returns the host:port the broker listens on.
func (b *Broker) Addr() string { return b.addr }

// URL returns the broker's address as an MQTT URL, tcp://host:port.
func (b *Broker) URL() string { return "tcp://" + b.addr }

// Done is closed when the broker has stopped.
func (b *Broker) Done() <-chan struct{} { return b.closed }

// DataDir returns the data directory in use, "" when the broker keeps
// everything in memory.
func (b *Broker) DataDir() string { return b.dataDir }

// Close disconnects every client, stops the broker and closes its stores.
// It is idempotent.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		// The server's own Close lists a listener's clients holding the
		// client table's read lock twice, which deadlocks with a client
		// that detaches at that moment (it waits for the write lock in
		// between). So the listener stops accepting first, without that
		// listing, and the clients are disconnected from a copy of the
		// table; the server's Close then finds the listener closed.
		b.listener.Close(func(string) {})
		for _, cl := range b.server.Clients.GetAll() {
			if cl.Net.Listener == b.listener.ID() && !cl.Closed() {
				_ = b.server.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		}
		b.closeErr = b.server.Close()
		if b.unlock != nil {
			b.unlock()
		}
		b.warn.close()
		close(b.closed)
	})
	return b.closeErr
}

// ReadUsersFile reads a users file: "name:password" lines, blank lines and
// '#' comments ignored. Errors name the file and line, never a password.
func ReadUsersFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("embedded broker: reading the users file: %w", err)
	}
	defer f.Close()
	users, err := parseUsers(f)
	if err != nil {
		return nil, fmt.Errorf("embedded broker: users file %s: %w", path, err)
	}
	return users, nil
}

func parseUsers(r io.Reader) (map[string]string, error) {
	users := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		name, password, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		switch {
		case !ok:
			return nil, fmt.Errorf("line %d: want name:password", n)
		case name == "":
			return nil, fmt.Errorf("line %d: the user name is empty", n)
		case password == "":
			return nil, fmt.Errorf("line %d: the password of user %q is empty", n, name)
		}
		if _, dup := users[name]; dup {
			return nil, fmt.Errorf("line %d: user %q is listed twice", n, name)
		}
		users[name] = password
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(users) == 0 {
		return nil, errors.New("no users")
	}
	return users, nil
}

// usersHook admits the users of a users file, or everybody when there is
// none, and lets admitted clients use every topic.
type usersHook struct {
	mqtt.HookBase
	users map[string]string // nil: anonymous access
}

// ID implements mqtt.Hook.
func (h *usersHook) ID() string { return "switchyard-users" }

// Provides implements mqtt.Hook.
func (h *usersHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck}, []byte{b})
}

// OnConnectAuthenticate admits a client whose user name and password match a
// line of the users file, or any client when there is no users file.
func (h *usersHook) OnConnectAuthenticate(_ *mqtt.Client, pk packets.Packet) bool {
	if h.users == nil {
		return true
	}
	want, ok := h.users[string(pk.Connect.Username)]
	if !ok {
		// Compare anyway, so a wrong name takes as long as a wrong password.
		subtle.ConstantTimeCompare(pk.Connect.Password, pk.Connect.Password)
		return false
	}
	return subtle.ConstantTimeCompare(pk.Connect.Password, []byte(want)) == 1
}

// OnACLCheck lets every admitted client publish and subscribe to every topic.
func (h *usersHook) OnACLCheck(*mqtt.Client, string, bool) bool { return true }
