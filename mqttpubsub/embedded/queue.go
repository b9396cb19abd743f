package embedded

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
)

// The router takes over the delivery of QoS 1 and 2 messages from mochi.
//
// mochi keeps a session's undelivered messages in its in-flight map, keyed
// by 16-bit packet identifier: at most 65,535 per session, all in memory,
// and a message that does not fit is dropped after its publisher was told
// it was accepted. The router instead writes every QoS 1/2 message into a
// queue per receiving session (a client's own queue, or one queue per
// shared-subscription filter that its members take turns to drain) in a
// pebble store, before the publisher gets its PUBACK. A feeder per
// connected client hands queued messages to it, at most the in-flight
// window at a time, and a message leaves its queue only when the client
// acknowledges it (PUBACK, or PUBREC for QoS 2). When a client goes away
// its unacknowledged messages stay with its session, and mochi sends them
// again with the same packet identifiers when it resumes; when the session
// ends (or the broker restarts) they are handed out anew from the front of
// their queues. A publish that would take a queue past its limits is refused as a whole: an
// MQTT 5 publisher gets a PUBACK with reason "quota exceeded", an MQTT 3
// publisher gets no PUBACK (its send times out); nothing was stored.
//
// Store layout: "m"+queue name -> queue id (8 bytes); "e"+id+seq -> record.
// Queue names: "c"+client id (a client's own queue), "s"+shared filter.
type router struct {
	mqtt.HookBase

	server *mqtt.Server
	retain func(cl *mqtt.Client, pk packets.Packet, r int64) // persists a retained message; nil in memory
	db     *pebble.DB
	wo     *pebble.WriteOptions
	lim    limits
	log    *slog.Logger

	dbMu     sync.RWMutex // held for reading by every store access; Stop takes it to close the store
	dbClosed bool

	mu       sync.Mutex
	closed   bool
	queues   map[string]*queue
	nextID   uint64
	nextSeq  uint64
	sessions map[*mqtt.Client]*feed
	byClient map[string]*feed
	// parked holds, per client id, the messages handed to a persistent
	// session whose client went away: they stay in its mochi in-flight map,
	// which mochi sends again with the same packet identifiers when the
	// session resumes ([MQTT-4.4.0-1]).
	parked map[string]map[uint16]handed
	wg     sync.WaitGroup
}

// limits are the per-session limits the router enforces.
type limits struct {
	maxInflight   int
	maxMessages   int
	maxBytes      int64
	maxQoS0Buffer int
}

type queue struct {
	name      string
	id        uint64
	persisted bool // its name record is in the store
	dropped   bool
	ready     []uint64 // sequence numbers not handed to a client, oldest first
	head      int
	count     int   // stored messages: ready + handed out
	bytes     int64 // their record sizes
	feeds     map[*feed]bool
}

func (q *queue) readyLen() int { return len(q.ready) - q.head }

func (q *queue) pop() uint64 {
	s := q.ready[q.head]
	q.head++
	if q.head > 1024 && q.head > len(q.ready)/2 {
		q.ready = append(q.ready[:0:0], q.ready[q.head:]...)
		q.head = 0
	}
	return s
}

// pushFront puts seqs (ascending) back before the ready messages.
func (q *queue) pushFront(seqs []uint64) {
	if len(seqs) <= q.head {
		q.head -= len(seqs)
		copy(q.ready[q.head:], seqs)
		return
	}
	n := make([]uint64, 0, len(seqs)+q.readyLen())
	n = append(n, seqs...)
	q.ready = append(n, q.ready[q.head:]...)
	q.head = 0
}

// feed hands queued messages to one connected client.
type feed struct {
	cl      *mqtt.Client
	window  int
	queues  []*queue
	next    int // round-robin position in queues
	out     map[uint16]handed
	qos0    []packets.Packet
	stopped bool
	wake    chan struct{}
	done    chan struct{}
}

type handed struct {
	q    *queue
	seq  uint64
	size int64
}

func (f *feed) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func queueKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{'e'}, id)
}

func entryKey(id, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(queueKey(id), seq)
}

func metaKey(name string) []byte { return append([]byte{'m'}, name...) }

func prefixEnd(p []byte) []byte {
	e := bytes.Clone(p)
	for i := len(e) - 1; i >= 0; i-- {
		e[i]++
		if e[i] != 0 {
			return e[:i+1]
		}
	}
	return nil
}

func newRouter(db *pebble.DB, sync bool, lim limits, log *slog.Logger) (*router, error) {
	r := &router{
		db: db, wo: pebble.NoSync, lim: lim, log: log,
		queues: map[string]*queue{}, nextID: 1, nextSeq: 1,
		sessions: map[*mqtt.Client]*feed{}, byClient: map[string]*feed{},
		parked: map[string]map[uint16]handed{},
	}
	if sync {
		r.wo = pebble.Sync
	}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

// load rebuilds the queues from the store.
func (r *router) load() error {
	byID := map[uint64]*queue{}
	it, err := r.db.NewIter(&pebble.IterOptions{LowerBound: []byte{'m'}, UpperBound: []byte{'n'}})
	if err != nil {
		return fmt.Errorf("embedded broker: reading the queue store: %w", err)
	}
	for it.First(); it.Valid(); it.Next() {
		v := it.Value()
		if len(v) != 8 {
			continue
		}
		q := &queue{name: string(it.Key()[1:]), id: binary.BigEndian.Uint64(v), persisted: true, feeds: map[*feed]bool{}}
		r.queues[q.name] = q
		byID[q.id] = q
		r.nextID = max(r.nextID, q.id+1)
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("embedded broker: reading the queue store: %w", err)
	}
	it, err = r.db.NewIter(&pebble.IterOptions{LowerBound: []byte{'e'}, UpperBound: []byte{'f'}})
	if err != nil {
		return fmt.Errorf("embedded broker: reading the queue store: %w", err)
	}
	var orphans []uint64
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != 17 {
			continue
		}
		id, seq := binary.BigEndian.Uint64(k[1:9]), binary.BigEndian.Uint64(k[9:])
		r.nextSeq = max(r.nextSeq, seq+1)
		q := byID[id]
		if q == nil {
			if len(orphans) == 0 || orphans[len(orphans)-1] != id {
				orphans = append(orphans, id)
			}
			continue
		}
		q.ready = append(q.ready, seq)
		q.count++
		q.bytes += int64(len(it.Value()))
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("embedded broker: reading the queue store: %w", err)
	}
	for _, id := range orphans {
		if err := r.db.DeleteRange(queueKey(id), prefixEnd(queueKey(id)), r.wo); err != nil {
			return fmt.Errorf("embedded broker: cleaning the queue store: %w", err)
		}
	}
	return nil
}

// queueLocked returns the queue of the given name, creating it in memory.
func (r *router) queueLocked(name string) *queue {
	q := r.queues[name]
	if q == nil {
		q = &queue{name: name, id: r.nextID, feeds: map[*feed]bool{}}
		r.nextID++
		r.queues[name] = q
	}
	return q
}

// dropLocked deletes a queue and its messages.
func (r *router) dropLocked(q *queue) {
	if q == nil || q.dropped {
		return
	}
	q.dropped = true
	delete(r.queues, q.name)
	for f := range q.feeds {
		f.queues = slices.DeleteFunc(f.queues, func(x *queue) bool { return x == q })
	}
	q.feeds = nil
	if !q.persisted && q.count == 0 {
		return
	}
	r.dbMu.RLock()
	defer r.dbMu.RUnlock()
	if r.dbClosed {
		return
	}
	b := r.db.NewBatch()
	_ = b.DeleteRange(queueKey(q.id), prefixEnd(queueKey(q.id)), nil)
	_ = b.Delete(metaKey(q.name), nil)
	if err := b.Commit(r.wo); err != nil {
		r.log.Error("embedded broker: deleting a session queue", "queue", q.name, "error", err)
	}
}

// ID implements mqtt.Hook.
func (r *router) ID() string { return "switchyard-queues" }

// Provides implements mqtt.Hook.
func (r *router) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnPublish, mqtt.OnPacketRead, mqtt.OnSessionEstablish, mqtt.OnSessionEstablished,
		mqtt.OnDisconnect, mqtt.OnSubscribed, mqtt.OnUnsubscribed, mqtt.OnClientExpired, mqtt.StoredSysInfo,
	}, []byte{b})
}

// StoredSysInfo is called by mochi once it has loaded the stored sessions
// and before it accepts connections: drop the queues nobody can drain.
func (r *router) StoredSysInfo() (storage.SystemInfo, error) {
	clients := r.server.Clients.GetAll()
	shared := map[string]bool{}
	for _, cl := range clients {
		for filter := range cl.State.Subscriptions.GetAll() {
			shared[filter] = true
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, q := range r.queues {
		switch name[0] {
		case 'c':
			if _, ok := clients[name[1:]]; !ok {
				r.dropLocked(q)
			}
		case 's':
			if !shared[name[1:]] {
				r.dropLocked(q)
			}
		}
	}
	return storage.SystemInfo{}, nil
}

// Stop implements mqtt.Hook: it stops the feeders and closes the store.
func (r *router) Stop() error {
	r.mu.Lock()
	r.closed = true
	for _, f := range r.sessions {
		r.detachLocked(f, true)
	}
	r.mu.Unlock()
	r.wg.Wait()
	r.dbMu.Lock()
	defer r.dbMu.Unlock()
	if r.dbClosed {
		return nil
	}
	r.dbClosed = true
	if err := r.db.Close(); err != nil {
		return fmt.Errorf("embedded broker: closing the queue store: %w", err)
	}
	return nil
}

type target struct {
	q    *queue
	msg  storedMessage
	seq  uint64
	rec  []byte
	meta bool // write the queue's name record too
}

// OnPublish stores a QoS 1/2 message in the queue of every session that
// should get it before mochi acknowledges it, and tells mochi not to route
// it itself. QoS 0 messages are left to mochi.
func (r *router) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Qos == 0 || cl.Net.Inline {
		return pk, nil
	}
	subs := r.server.Topics.Subscribers(pk.TopicName)
	base := storedMessage{qos: pk.FixedHeader.Qos, created: pk.Created, topic: pk.TopicName, origin: cl.ID, props: publishProps(pk.Properties), payload: pk.Payload}
	if base.created == 0 {
		base.created = time.Now().Unix()
	}
	type direct struct {
		client string
		sub    packets.Subscription
	}
	var qos0 []direct
	var names []string
	var msgs []storedMessage
	for id, sub := range subs.Subscriptions {
		if sub.NoLocal && id == cl.ID {
			continue
		}
		if sub.Qos == 0 {
			qos0 = append(qos0, direct{id, sub})
			continue
		}
		m := base
		m.qos = min(pk.FixedHeader.Qos, sub.Qos)
		m.retain = pk.FixedHeader.Retain && sub.RetainAsPublished
		m.ids = subscriptionIDs(sub)
		names = append(names, "c"+id)
		msgs = append(msgs, m)
	}
	for filter, members := range subs.Shared {
		var top byte
		var any string
		for id, sub := range members {
			top = max(top, sub.Qos)
			if any == "" {
				any = id
			}
		}
		if top == 0 {
			qos0 = append(qos0, direct{any, members[any]})
			continue
		}
		m := base
		m.retain = pk.FixedHeader.Retain
		names = append(names, "s"+filter)
		msgs = append(msgs, m)
	}

	if len(names) > 0 {
		if err := r.enqueue(cl, names, msgs); err != nil {
			return pk, err
		}
	}
	if pk.FixedHeader.Retain && r.server.Options.Capabilities.RetainAvailable != 0 {
		// What mochi does for a retained message, which it skips for a
		// message it does not route itself.
		n := r.server.Topics.RetainMessage(pk.Copy(false))
		if r.retain != nil {
			r.retain(cl, pk, n)
		}
		atomic.StoreInt64(&r.server.Info.Retained, int64(r.server.Topics.Retained.Len()))
	}
	if len(qos0) > 0 {
		r.mu.Lock()
		for _, d := range qos0 {
			f := r.byClient[d.client]
			if f == nil || len(f.qos0) >= r.lim.maxQoS0Buffer {
				continue
			}
			out := base.packet(d.sub)
			out.FixedHeader.Qos = 0
			f.qos0 = append(f.qos0, out)
			f.poke()
		}
		r.mu.Unlock()
	}
	return pk, packets.CodeSuccessIgnore
}

// refuse returns the error that makes mochi refuse a publish: a PUBACK
// with reason "quota exceeded" for an MQTT 5 QoS 1 publish, no answer at all
// otherwise. mochi needs the bare packets.Code (it type-asserts it).
func refuse(cl *mqtt.Client, pk packets.Packet) error {
	if cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos == 1 {
		return packets.ErrQuotaExceeded
	}
	return packets.ErrRejectPacket
}

// enqueue stores one record per queue, all or none.
func (r *router) enqueue(cl *mqtt.Client, names []string, msgs []storedMessage) error {
	ts := make([]target, len(names))
	size := 0
	for i := range ts {
		ts[i].msg = msgs[i]
		ts[i].rec = msgs[i].encode(make([]byte, 0, 64+len(msgs[i].payload)+len(msgs[i].topic)))
		size += len(ts[i].rec)
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Qos: msgs[0].qos}}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return packets.ErrRejectPacket
	}
	for i, name := range names {
		q := r.queueLocked(name)
		ts[i].q = q
		n := int64(len(ts[i].rec))
		if q.count+1 > r.lim.maxMessages || q.bytes+n > r.lim.maxBytes {
			count, bytes := q.count, q.bytes
			r.mu.Unlock()
			r.log.Warn("embedded broker: publish refused, a session holds the most messages it may store",
				"client", cl.ID, "topic", msgs[i].topic, "queue", queueLabel(name),
				"stored_messages", count, "stored_bytes", bytes,
				"max_messages", r.lim.maxMessages, "max_bytes", r.lim.maxBytes)
			pk.FixedHeader.Qos = msgsQos(msgs)
			return refuse(cl, pk)
		}
	}
	for i := range ts {
		q := ts[i].q
		ts[i].seq = r.nextSeq
		ts[i].meta = !q.persisted
		r.nextSeq++
		q.count++
		q.bytes += int64(len(ts[i].rec))
	}
	r.mu.Unlock()

	err := r.write(ts)

	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range ts {
		q := ts[i].q
		if err != nil {
			if !q.dropped {
				q.count--
				q.bytes -= int64(len(ts[i].rec))
			}
			continue
		}
		if q.dropped {
			continue
		}
		q.persisted = true
		q.ready = append(q.ready, ts[i].seq)
		for f := range q.feeds {
			f.poke()
		}
	}
	if err != nil {
		r.log.Error("embedded broker: publish refused, storing it failed", "client", cl.ID, "topic", msgs[0].topic, "error", err)
		pk.FixedHeader.Qos = msgsQos(msgs)
		return refuse(cl, pk)
	}
	return nil
}

func msgsQos(msgs []storedMessage) byte {
	var q byte
	for _, m := range msgs {
		q = max(q, m.qos)
	}
	return q
}

func (r *router) write(ts []target) error {
	r.dbMu.RLock()
	defer r.dbMu.RUnlock()
	if r.dbClosed {
		return pebble.ErrClosed
	}
	b := r.db.NewBatch()
	defer b.Close()
	for i := range ts {
		q := ts[i].q
		if ts[i].meta {
			_ = b.Set(metaKey(q.name), binary.BigEndian.AppendUint64(nil, q.id), nil)
		}
		_ = b.Set(entryKey(q.id, ts[i].seq), ts[i].rec, nil)
	}
	return b.Commit(r.wo)
}

func queueLabel(name string) string {
	if name[0] == 's' {
		return "shared " + name[1:]
	}
	return "client " + name[1:]
}

func publishProps(p packets.Properties) packets.Properties {
	return packets.Properties{
		PayloadFormat: p.PayloadFormat, PayloadFormatFlag: p.PayloadFormatFlag,
		MessageExpiryInterval: p.MessageExpiryInterval, ContentType: p.ContentType,
		ResponseTopic: p.ResponseTopic, CorrelationData: p.CorrelationData, User: p.User,
	}
}

func subscriptionIDs(sub packets.Subscription) []int {
	var ids []int
	for _, id := range sub.Identifiers {
		if id > 0 {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 && sub.Identifier > 0 {
		ids = append(ids, sub.Identifier)
	}
	sort.Ints(ids)
	return ids
}

// packet builds the PUBLISH for a subscriber of sub.
func (m *storedMessage) packet(sub packets.Subscription) packets.Packet {
	out := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: m.qos, Retain: m.retain},
		TopicName:   m.topic,
		Payload:     m.payload,
		Properties:  m.props,
		Origin:      m.origin,
		Created:     m.created,
	}
	ids := m.ids
	if ids == nil {
		ids = subscriptionIDs(sub)
	}
	if len(ids) > 0 {
		out.Properties.SubscriptionIdentifier = ids
	}
	return out
}

// OnPacketRead completes a handed-out message when its client acknowledges
// it: PUBACK for QoS 1, PUBREC for QoS 2 (mochi finishes the QoS 2 exchange).
func (r *router) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if t := pk.FixedHeader.Type; t == packets.Puback || t == packets.Pubrec {
		r.acked(cl, pk.PacketID)
	}
	return pk, nil
}

func (r *router) acked(cl *mqtt.Client, pid uint16) {
	r.mu.Lock()
	out := r.parked[cl.ID]
	f := r.sessions[cl]
	if f != nil {
		out = f.out
	}
	h, ok := out[pid]
	if !ok {
		r.mu.Unlock()
		return
	}
	delete(out, pid)
	q := h.q
	if !q.dropped {
		q.count--
		q.bytes -= h.size
	}
	if f != nil {
		f.poke()
	}
	r.mu.Unlock()
	if !q.dropped {
		r.remove(q.id, h.seq)
	}
}

func (r *router) remove(id, seq uint64) {
	r.dbMu.RLock()
	defer r.dbMu.RUnlock()
	if r.dbClosed {
		return
	}
	if err := r.db.Delete(entryKey(id, seq), r.wo); err != nil {
		r.log.Error("embedded broker: deleting a delivered message", "error", err)
	}
}

// OnSessionEstablish stops the feeder of a session being taken over before
// mochi copies the session: its unacknowledged messages stay with the
// session, to be sent again with their packet identifiers. A client that
// starts clean loses its own queue, and the messages of shared queues it
// had go back to them.
func (r *router) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f := r.byClient[cl.ID]; f != nil {
		r.detachLocked(f, true)
	}
	if pk.Connect.Clean {
		r.dropLocked(r.queues["c"+cl.ID])
		r.releaseLocked(cl.ID, nil)
	}
}

// OnSessionEstablished starts feeding the client once its CONNACK is out.
func (r *router) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || cl.Closed() {
		return
	}
	if f := r.byClient[cl.ID]; f != nil {
		r.detachLocked(f, true)
	}
	window := r.lim.maxInflight
	if rm := int(cl.Properties.Props.ReceiveMaximum); cl.Properties.ProtocolVersion == 5 && rm > 0 {
		window = min(window, rm)
	}
	out := r.parked[cl.ID]
	delete(r.parked, cl.ID)
	if out == nil {
		out = map[uint16]handed{}
	}
	f := &feed{cl: cl, window: window, out: out, wake: make(chan struct{}, 1), done: make(chan struct{})}
	r.attachLocked(f, r.queueLocked("c"+cl.ID))
	for filter := range cl.State.Subscriptions.GetAll() {
		if mqtt.IsSharedFilter(filter) {
			r.attachLocked(f, r.queueLocked("s"+filter))
		}
	}
	r.sessions[cl] = f
	r.byClient[cl.ID] = f
	r.wg.Add(1)
	go r.run(f)
	f.poke()
}

func (r *router) attachLocked(f *feed, q *queue) {
	if q.feeds[f] {
		return
	}
	q.feeds[f] = true
	f.queues = append(f.queues, q)
}

// detachLocked stops a feeder. With park, the messages handed to its client
// and not acknowledged stay with the client's session (and in its mochi
// in-flight map); without, they go back to the front of their queues.
func (r *router) detachLocked(f *feed, park bool) {
	if f.stopped {
		return
	}
	f.stopped = true
	close(f.done)
	id := f.cl.ID
	if park && len(f.out) > 0 {
		p := r.parked[id]
		if p == nil {
			p = map[uint16]handed{}
			r.parked[id] = p
		}
		for pid, h := range f.out {
			p[pid] = h
		}
	} else if len(f.out) > 0 {
		r.releaseLocked(id, f)
	}
	f.out = nil
	f.qos0 = nil
	for _, q := range f.queues {
		delete(q.feeds, f)
		for g := range q.feeds {
			g.poke()
		}
	}
	f.queues = nil
	delete(r.sessions, f.cl)
	if r.byClient[id] == f {
		delete(r.byClient, id)
	}
}

// releaseLocked puts the messages parked for a client (and those handed out
// by f, when not nil) back at the front of their queues and out of the
// client's in-flight map.
func (r *router) releaseLocked(id string, f *feed) {
	back := map[*queue][]uint64{}
	take := func(cl *mqtt.Client, out map[uint16]handed) {
		for pid, h := range out {
			if cl != nil && cl.State.Inflight.Delete(pid) {
				atomic.AddInt64(&r.server.Info.Inflight, -1)
				cl.State.Inflight.IncreaseSendQuota()
			}
			if !h.q.dropped {
				back[h.q] = append(back[h.q], h.seq)
			}
		}
	}
	if p := r.parked[id]; p != nil {
		cl, _ := r.server.Clients.Get(id)
		take(cl, p)
		delete(r.parked, id)
	}
	if f != nil {
		take(f.cl, f.out)
		f.out = map[uint16]handed{}
	}
	for q, seqs := range back {
		slices.Sort(seqs)
		q.pushFront(seqs)
		for g := range q.feeds {
			g.poke()
		}
	}
}

// OnDisconnect detaches the client's feeder; a session that ends with the
// connection loses its own queue.
func (r *router) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ends := expire && !cl.IsTakenOver() && !r.closed
	if f := r.sessions[cl]; f != nil {
		r.detachLocked(f, !ends)
	}
	if ends && r.byClient[cl.ID] == nil {
		r.dropLocked(r.queues["c"+cl.ID])
		r.releaseLocked(cl.ID, nil)
	}
}

// OnClientExpired drops the own queue of an expired session.
func (r *router) OnClientExpired(cl *mqtt.Client) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byClient[cl.ID] == nil {
		r.dropLocked(r.queues["c"+cl.ID])
		r.releaseLocked(cl.ID, nil)
	}
}

// OnSubscribed lets a connected client drain the queues of the shared
// subscriptions it joined.
func (r *router) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.sessions[cl]
	for i, sub := range pk.Filters {
		if i >= len(codes) || codes[i] >= packets.ErrUnspecifiedError.Code || !mqtt.IsSharedFilter(sub.Filter) {
			continue
		}
		q := r.queueLocked("s" + sub.Filter)
		if f != nil && !f.stopped {
			r.attachLocked(f, q)
			f.poke()
		}
	}
}

// OnUnsubscribed stops a client draining the queues of shared subscriptions
// it left, and drops a shared queue once no session subscribes to it.
func (r *router) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	var shared []string
	for _, sub := range pk.Filters {
		if mqtt.IsSharedFilter(sub.Filter) {
			shared = append(shared, sub.Filter)
		}
	}
	if len(shared) == 0 {
		return
	}
	clients := r.server.Clients.GetAll()
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.sessions[cl]
	for _, filter := range shared {
		q := r.queues["s"+filter]
		if q == nil {
			continue
		}
		if f != nil && q.feeds[f] {
			delete(q.feeds, f)
			f.queues = slices.DeleteFunc(f.queues, func(x *queue) bool { return x == q })
		}
		used := false
		for _, other := range clients {
			if _, ok := other.State.Subscriptions.Get(filter); ok {
				used = true
				break
			}
		}
		if !used {
			r.dropLocked(q)
		}
	}
}

func (r *router) run(f *feed) {
	defer r.wg.Done()
	for {
		select {
		case <-f.done:
			return
		case <-f.wake:
		}
		for r.deliverOne(f) {
		}
	}
}

// nextLocked picks the next ready message for f, round robin over its
// queues.
func (f *feed) nextLocked() (*queue, uint64, bool) {
	for i := range f.queues {
		q := f.queues[(f.next+i)%len(f.queues)]
		if q.readyLen() > 0 {
			f.next = (f.next + i + 1) % len(f.queues)
			return q, q.pop(), true
		}
	}
	return nil, 0, false
}

// deliverOne hands one message to f's client; false when there is nothing
// (more) to do until the next wake-up.
func (r *router) deliverOne(f *feed) bool {
	r.mu.Lock()
	if f.stopped {
		r.mu.Unlock()
		return false
	}
	if len(f.qos0) > 0 {
		pk := f.qos0[0]
		f.qos0 = f.qos0[1:]
		r.mu.Unlock()
		return f.cl.WritePacket(pk) == nil
	}
	if len(f.out) >= f.window {
		r.mu.Unlock()
		return false
	}
	q, seq, ok := f.nextLocked()
	r.mu.Unlock()
	if !ok {
		return false
	}
	putBack := func() {
		r.mu.Lock()
		if !q.dropped {
			q.pushFront([]uint64{seq})
		}
		r.mu.Unlock()
	}

	rec, err := r.read(q.id, seq)
	if err != nil {
		if errors.Is(err, pebble.ErrNotFound) {
			return true // its queue was dropped meanwhile
		}
		putBack()
		if !errors.Is(err, pebble.ErrClosed) {
			r.log.Error("embedded broker: reading a queued message", "client", f.cl.ID, "error", err)
		}
		return false
	}
	size := int64(len(rec))
	msg, err := decodeMessage(rec)
	if err != nil {
		r.log.Error("embedded broker: dropping an unreadable queued message", "client", f.cl.ID, "queue", queueLabel(q.name), "error", err)
		r.mu.Lock()
		if !q.dropped {
			q.count--
			q.bytes -= size
		}
		r.mu.Unlock()
		r.remove(q.id, seq)
		return true
	}
	var sub packets.Subscription
	if q.name[0] == 's' {
		s, ok := f.cl.State.Subscriptions.Get(q.name[1:])
		if !ok {
			putBack() // the client left the group; another member takes it
			return true
		}
		sub = s
		msg.qos = min(msg.qos, s.Qos)
		msg.retain = msg.retain && s.RetainAsPublished
	}
	out := msg.packet(sub)
	if out.FixedHeader.Qos == 0 {
		// A shared subscriber that asked for QoS 0: it gets the message once.
		err := f.cl.WritePacket(out)
		if err != nil {
			putBack()
			return false
		}
		r.mu.Lock()
		if !q.dropped {
			q.count--
			q.bytes -= size
		}
		r.mu.Unlock()
		r.remove(q.id, seq)
		return true
	}
	pid, err := f.cl.NextPacketID()
	if err != nil {
		putBack()
		return false
	}
	out.PacketID = uint16(pid)
	r.mu.Lock()
	if f.stopped || q.dropped {
		if !q.dropped {
			q.pushFront([]uint64{seq})
		}
		r.mu.Unlock()
		return false
	}
	if f.cl.State.Inflight.Set(out) {
		atomic.AddInt64(&r.server.Info.Inflight, 1)
	}
	f.cl.State.Inflight.DecreaseSendQuota()
	f.out[out.PacketID] = handed{q: q, seq: seq, size: size}
	r.mu.Unlock()
	// A failed write means the connection is going away: the disconnect
	// puts the message back in its queue.
	return f.cl.WritePacket(out) == nil
}

func (r *router) read(id, seq uint64) ([]byte, error) {
	r.dbMu.RLock()
	defer r.dbMu.RUnlock()
	if r.dbClosed {
		return nil, pebble.ErrClosed
	}
	v, closer, err := r.db.Get(entryKey(id, seq))
	if err != nil {
		return nil, err
	}
	rec := bytes.Clone(v)
	_ = closer.Close()
	return rec, nil
}
