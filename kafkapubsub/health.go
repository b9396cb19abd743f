package kafkapubsub

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// connTracker follows the connections of one or more kgo clients through
// their hooks. The client reconnects by itself; the tracker only remembers,
// per broker address, whether the latest attempt to connect succeeded.
type connTracker struct {
	mu      sync.Mutex
	brokers map[string]*brokerState
	now     func() time.Time
}

type brokerState struct {
	ok    bool
	since time.Time
	err   error
}

var (
	_ kgo.HookBrokerConnect = (*connTracker)(nil)
	_ kgo.HookBrokerRead    = (*connTracker)(nil)
)

func newConnTracker() *connTracker {
	return &connTracker{brokers: map[string]*brokerState{}, now: time.Now}
}

// OnBrokerConnect implements kgo.HookBrokerConnect.
func (c *connTracker) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	c.record(net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port))), err)
}

// OnBrokerRead implements kgo.HookBrokerRead: a failed read on an
// established connection (the broker went away) counts as a disconnect.
func (c *connTracker) OnBrokerRead(meta kgo.BrokerMetadata, _ int16, _ int, _, _ time.Duration, err error) {
	if err == nil {
		return
	}
	c.record(net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port))), err)
}

func (c *connTracker) record(addr string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.brokers[addr]
	if s == nil {
		s = &brokerState{ok: err != nil} // forces since to be set below
		c.brokers[addr] = s
	}
	ok := err == nil
	if ok != s.ok {
		s.since = c.now()
	}
	s.ok, s.err = ok, err
}

// health returns nil when the latest connection attempt to every broker the
// client tried succeeded, else an error naming each broker that is down,
// since when and why.
func (c *connTracker) health() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var down []string
	for addr, s := range c.brokers {
		if !s.ok {
			down = append(down, fmt.Sprintf("disconnected from %s since %s: %v", addr, s.since.Format("15:04:05"), s.err))
		}
	}
	if len(down) == 0 {
		return nil
	}
	sort.Strings(down)
	return fmt.Errorf("kafkapubsub: %s", strings.Join(down, "; "))
}
