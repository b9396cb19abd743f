package embedded

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
)

// receiver is a persistent-session MQTT 3.1.1 consumer with manual acks
// that counts what it gets by payload.
type receiver struct {
	mu    sync.Mutex
	seen  map[string]int
	total int
}

func newReceiver() *receiver { return &receiver{seen: map[string]int{}} }

func (r *receiver) handle(_ mqtt.Client, m mqtt.Message) {
	r.mu.Lock()
	r.seen[string(m.Payload())]++
	r.total++
	r.mu.Unlock()
	m.Ack()
}

func (r *receiver) counts() (distinct, total int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen), r.total
}

// waitFor waits until the receiver has want distinct messages.
func (r *receiver) waitFor(t *testing.T, want int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		d, total := r.counts()
		if d >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d distinct messages of %d (%d deliveries) within %s", d, want, total, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// consumerOptions are the options of a persistent consumer with manual acks.
func consumerOptions(url, id string, r *receiver) *mqtt.ClientOptions {
	return mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(false).
		SetProtocolVersion(4).SetAutoAckDisabled(true).SetOrderMatters(true).
		SetAutoReconnect(true).SetMaxReconnectInterval(100 * time.Millisecond).
		SetConnectTimeout(5 * time.Second).SetDefaultPublishHandler(r.handle)
}

func mustConnect(t *testing.T, opts *mqtt.ClientOptions) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	return c
}

func mustSubscribe(t *testing.T, c mqtt.Client, filter string) {
	t.Helper()
	if tok := c.Subscribe(filter, 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
}

// peakRSS returns the process's peak resident set (VmHWM) as written in
// /proc/self/status, or "unknown".
func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// v5Client is a bare MQTT 5 client, enough to see the reason code of a
// PUBACK (paho.mqtt.golang speaks MQTT 3.1.1 only).
type v5Client struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialV5(t *testing.T, addr, id string) *v5Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := &v5Client{conn: conn, r: bufio.NewReader(conn)}
	t.Cleanup(func() { _ = conn.Close() })
	c.write(t, packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 5,
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: id,
		},
	})
	if pk := c.read(t); pk.FixedHeader.Type != packets.Connack || pk.ReasonCode != 0 {
		t.Fatalf("connect: got packet type %d reason %#x", pk.FixedHeader.Type, pk.ReasonCode)
	}
	return c
}

func (c *v5Client) write(t *testing.T, pk packets.Packet) {
	t.Helper()
	pk.ProtocolVersion = 5
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	default:
		err = fmt.Errorf("cannot encode packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		t.Fatal(err)
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.conn.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
}

func (c *v5Client) read(t *testing.T) packets.Packet {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := c.r.ReadByte()
	if err != nil {
		t.Fatalf("reading a packet: %v", err)
	}
	var pk packets.Packet
	pk.ProtocolVersion = 5
	if err := pk.FixedHeader.Decode(b); err != nil {
		t.Fatal(err)
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		t.Fatal(err)
	}
	pk.FixedHeader.Remaining = n
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	}
	if err != nil {
		t.Fatal(err)
	}
	return pk
}

// publish sends a QoS 1 message and returns the reason code of its PUBACK.
func (c *v5Client) publish(t *testing.T, id uint16, topic, payload string) byte {
	t.Helper()
	c.write(t, packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName:   topic, Payload: []byte(payload), PacketID: id,
	})
	pk := c.read(t)
	if pk.FixedHeader.Type != packets.Puback || pk.PacketID != id {
		t.Fatalf("publish %d: got packet type %d id %d", id, pk.FixedHeader.Type, pk.PacketID)
	}
	return pk.ReasonCode
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
