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
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// DefaultListen is the address the broker listens on when Config.Listen is empty.
const DefaultListen = "127.0.0.1:1883"

// Config configures the embedded broker.
type Config struct {
	// Listen is the TCP address to listen on, host:port. A port of 0 picks a
	// free port (see Broker.Addr). Default 127.0.0.1:1883.
	Listen string
	// UsersFile names the users file (see the package documentation). Empty
	// allows anonymous clients.
	UsersFile string
	// Logger receives the broker's log; nil discards it.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("embedded broker: listen address %q is not host:port: %w", c.Listen, err)
	}
	return nil
}

// Broker is a running embedded broker.
type Broker struct {
	server   *mqtt.Server
	listener *listeners.TCP
	addr     string

	closeOnce sync.Once
	closeErr  error
	closed    chan struct{}
}

// Start starts a broker and returns once it accepts connections. When ctx is
// cancelled later, the broker closes itself, as if Close was called.
func Start(ctx context.Context, cfg Config) (*Broker, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	var users map[string]string
	if cfg.UsersFile != "" {
		var err error
		if users, err = ReadUsersFile(cfg.UsersFile); err != nil {
			return nil, err
		}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError + 1}))
	}

	caps := mqtt.NewDefaultServerCapabilities()
	// Manual acknowledgement keeps many messages in flight per client, and a
	// persistent session collects messages while its client is away: allow
	// the most the protocol does, and never expire stored messages.
	caps.MaximumInflight = math.MaxUint16
	caps.ReceiveMaximum = math.MaxUint16
	caps.MaximumClientWritesPending = 1 << 16
	caps.MaximumMessageExpiryInterval = 0
	server := mqtt.New(&mqtt.Options{
		Capabilities:           caps,
		Logger:                 logger,
		SysTopicResendInterval: 10,
	})
	if err := server.AddHook(&usersHook{users: users}, nil); err != nil {
		return nil, fmt.Errorf("embedded broker: adding the authentication hook: %w", err)
	}
	if err := server.AddHook(newTakeoverGuard(), nil); err != nil {
		return nil, fmt.Errorf("embedded broker: adding the session guard hook: %w", err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: cfg.Listen})
	if err := server.AddListener(tcp); err != nil {
		return nil, fmt.Errorf("embedded broker: listening on %s: %w", cfg.Listen, err)
	}
	if err := server.Serve(); err != nil {
		_ = server.Close()
		return nil, fmt.Errorf("embedded broker: starting: %w", err)
	}
	b := &Broker{server: server, listener: tcp, addr: tcp.Address(), closed: make(chan struct{})}
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

// Addr returns the host:port the broker listens on.
func (b *Broker) Addr() string { return b.addr }

// URL returns the broker's address as an MQTT URL, tcp://host:port.
func (b *Broker) URL() string { return "tcp://" + b.addr }

// Done is closed when the broker has stopped.
func (b *Broker) Done() <-chan struct{} { return b.closed }

// Close disconnects every client and stops the broker. It is idempotent.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.closeErr = b.server.Close()
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
