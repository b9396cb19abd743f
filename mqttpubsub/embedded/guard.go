package embedded

import (
	"bytes"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// takeoverWait bounds how long a connecting client waits for the messages
// being handed out at that moment.
const takeoverWait = 2 * time.Second

// takeoverGuard keeps a client that resumes a persistent session from
// taking the session over while messages are being handed to subscribers.
//
// mochi-mqtt acknowledges a published message before it hands it to the
// subscribers' sessions, and a resuming client copies the messages of its
// old session object before it replaces it: a message handed to the old
// object between the copy and the replacement would be lost, and one handed
// to the new object before its CONNACK was written would reach the client
// before the CONNACK, which makes the client drop the connection. The guard
// holds a read lock from the moment a message is accepted (OnPublish) until
// it was handed out (OnPacketProcessed), and the connecting client holds the
// write lock from before the copy (OnSessionEstablish) until its CONNACK was
// written (OnPacketSent).
type takeoverGuard struct {
	mqtt.HookBase

	lock sync.RWMutex

	mu         sync.Mutex
	publishing map[*mqtt.Client]bool   // clients whose publish holds a read lock
	resuming   map[*mqtt.Client]func() // releases of the write locks of connecting clients
}

func newTakeoverGuard() *takeoverGuard {
	return &takeoverGuard{publishing: map[*mqtt.Client]bool{}, resuming: map[*mqtt.Client]func(){}}
}

// ID implements mqtt.Hook.
func (g *takeoverGuard) ID() string { return "switchyard-takeover-guard" }

// Provides implements mqtt.Hook.
func (g *takeoverGuard) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnPublish, mqtt.OnPacketProcessed, mqtt.OnSessionEstablish, mqtt.OnPacketSent, mqtt.OnDisconnect}, []byte{b})
}

// OnPublish takes the read lock for the message being handed out. A client's
// packets are processed one at a time, so one flag per client suffices.
func (g *takeoverGuard) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	g.lock.RLock()
	g.mu.Lock()
	g.publishing[cl] = true
	g.mu.Unlock()
	return pk, nil
}

// OnPacketProcessed releases the read lock once the message was handed out.
func (g *takeoverGuard) OnPacketProcessed(cl *mqtt.Client, _ packets.Packet, _ error) {
	g.mu.Lock()
	held := g.publishing[cl]
	delete(g.publishing, cl)
	g.mu.Unlock()
	if held {
		g.lock.RUnlock()
	}
}

// OnSessionEstablish takes the write lock before the client's session is
// resumed, waiting at most takeoverWait for the messages being handed out.
func (g *takeoverGuard) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	acquired := make(chan struct{})
	go func() {
		g.lock.Lock()
		close(acquired)
	}()
	t := time.NewTimer(takeoverWait)
	defer t.Stop()
	select {
	case <-acquired:
	case <-t.C:
		// Go on unguarded; release the lock as soon as it is obtained.
		go func() {
			<-acquired
			g.lock.Unlock()
		}()
		return
	}
	var once sync.Once
	release := func() { once.Do(g.lock.Unlock) }
	// Should the CONNACK never be written (the connection broke), let go anyway.
	timer := time.AfterFunc(takeoverWait, func() { g.releaseResuming(cl) })
	g.mu.Lock()
	g.resuming[cl] = func() {
		timer.Stop()
		release()
	}
	g.mu.Unlock()
}

// OnPacketSent releases the write lock once the client's CONNACK was
// written: its session has been resumed.
func (g *takeoverGuard) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type == packets.Connack {
		g.releaseResuming(cl)
	}
}

// OnDisconnect forgets the client.
func (g *takeoverGuard) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	g.releaseResuming(cl)
}

func (g *takeoverGuard) releaseResuming(cl *mqtt.Client) {
	g.mu.Lock()
	release := g.resuming[cl]
	delete(g.resuming, cl)
	g.mu.Unlock()
	if release != nil {
		release()
	}
}
