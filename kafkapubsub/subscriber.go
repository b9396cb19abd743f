package kafkapubsub

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-go/switchyard/schema"
)

// pollBatch is the most records one poll hands to the dispatcher.
const pollBatch = 500

// Subscriber consumes Kafka topics as watermill messages. It is safe for
// concurrent use.
type Subscriber struct {
	cfg    SubscriberConfig
	logger watermill.LoggerAdapter
	opts   []kgo.Opt
	conns  *connTracker
	// pub publishes the copies of nacked messages and owns the admin client.
	pub *Publisher

	mu        sync.Mutex
	closed    bool
	consumers map[string]*consumer // by Kafka topic
	groups    map[string]string    // per-client group of each response/notify topic
	// starts holds, per topic, the end offsets read by SubscribeInitialize
	// for a group that had no committed offsets there: where the group
	// starts if it still has none when it joins (see adjustOffsets).
	starts map[string]map[int32]int64
	wg     sync.WaitGroup // Subscribe goroutines
}

var (
	_ message.Subscriber           = (*Subscriber)(nil)
	_ message.SubscribeInitializer = (*Subscriber)(nil)
)

// NewSubscriber returns a Subscriber for the cluster in config. It does not
// connect: SubscribeInitialize and Subscribe do.
func NewSubscriber(config SubscriberConfig, logger watermill.LoggerAdapter) (*Subscriber, error) {
	config.setDefaults()
	if err := config.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	opts, err := config.clientOpts()
	if err != nil {
		return nil, err
	}
	conns := newConnTracker()
	opts = append(opts, kgo.WithHooks(conns), kgo.WithLogger(kgoLogger{logger}))
	pub, err := NewPublisher(PublisherConfig{Config: config.Config}, logger)
	if err != nil {
		return nil, err
	}
	return &Subscriber{
		cfg:       config,
		logger:    logger,
		opts:      opts,
		conns:     conns,
		pub:       pub,
		consumers: map[string]*consumer{},
		groups:    map[string]string{},
		starts:    map[string]map[int32]int64{},
	}, nil
}

// group returns the consumer group of spec: SubscriptionName for shared
// queues, "{SubscriptionName}-{uuid}" (one uuid per topic for the life of the
// Subscriber) for response and notify queues.
func (s *Subscriber) group(spec topicSpec) string {
	if !spec.perClient {
		return s.cfg.SubscriptionName
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[spec.name]
	if !ok {
		g = s.cfg.SubscriptionName + "-" + uuid.NewString()
		s.groups[spec.name] = g
	}
	return g
}

// startsLatest reports whether a new group on spec starts at the end of the
// topic.
func (s *Subscriber) startsLatest(spec topicSpec) bool {
	switch s.cfg.InitialOffset {
	case OffsetLatest:
		return true
	case OffsetEarliest:
		return false
	}
	return !spec.perClient
}

// SubscribeInitialize creates the topic if it is missing and, for a group
// that starts at the latest message and has no committed offsets yet,
// commits the topic's current end offsets for the group, so that every
// message published after it returns is delivered to the group's first
// Subscribe.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	spec, err := parseTopic(topic)
	if err != nil {
		return err
	}
	return s.initialize(context.Background(), spec)
}

func (s *Subscriber) initialize(ctx context.Context, spec topicSpec) error {
	if s.isClosed() {
		return ErrClosed
	}
	if err := s.pub.topics.ensure(ctx, spec); err != nil {
		return err
	}
	if !s.startsLatest(spec) {
		return nil
	}
	group := s.group(spec)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	// The group coordinator may not be ready yet (the broker creates its
	// offsets topic on first use): retry what the broker calls retriable.
	for {
		err := s.commitEnd(ctx, spec, group)
		if err == nil {
			return nil
		}
		if !kerr.IsRetriable(err) || ctx.Err() != nil {
			return err
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return err
		}
	}
}

// commitEnd commits the end offsets of spec's topic for group unless the
// group has committed offsets for it.
func (s *Subscriber) commitEnd(ctx context.Context, spec topicSpec, group string) error {
	adm := kadm.NewClient(s.pub.adminCli)
	committed, err := adm.FetchOffsets(ctx, group)
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		return classify(fmt.Sprintf("reading the offsets of group %s", group), err)
	}
	if _, ok := committed[spec.name]; ok {
		return nil
	}
	ends, err := adm.ListEndOffsets(ctx, spec.name)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return classify(fmt.Sprintf("listing the end offsets of %s", spec.name), err)
	}
	start := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { start[o.Partition] = o.Offset })
	s.mu.Lock()
	if _, ok := s.starts[spec.name]; !ok {
		s.starts[spec.name] = start
	}
	s.mu.Unlock()
	resp, err := adm.CommitOffsets(ctx, group, ends.Offsets())
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		if kerr.IsRetriable(err) {
			return classify(fmt.Sprintf("committing initial offsets of group %s", group), err)
		}
		// A group that is active on other topics refuses a commit from
		// outside; its consumer then starts at the offsets remembered
		// above when it joins (adjustOffsets), which is what the commit was for.
		s.logger.Debug("kafkapubsub: group refused initial offsets; they apply when it joins",
			watermill.LogFields{"topic": spec.name, "group": group, "err": err.Error()})
	}
	return nil
}

// Subscribe returns a channel of the messages of topic for this Subscriber's
// group. Several Subscribe calls for one topic compete for its messages. The
// channel hands out up to AckWindow messages (default 1) before the oldest
// is acked or nacked, in the order of their partition, and is closed when
// ctx ends or the Subscriber closes.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	spec, err := parseTopic(topic)
	if err != nil {
		return nil, err
	}
	if err := s.initialize(ctx, spec); err != nil {
		return nil, err
	}
	c, err := s.acquire(spec)
	if err != nil {
		return nil, err
	}
	out := make(chan *message.Message)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(out)
		defer s.release(c)
		c.serve(ctx, out)
	}()
	return out, nil
}

// acquire returns the topic's consumer, starting it if needed, and counts
// one more Subscribe on it.
func (s *Subscriber) acquire(spec topicSpec) (*consumer, error) {
	group := s.group(spec)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if c := s.consumers[spec.name]; c != nil {
		c.refs++
		return c, nil
	}
	c, err := s.newConsumer(spec, group)
	if err != nil {
		return nil, err
	}
	c.refs = 1
	s.consumers[spec.name] = c
	return c, nil
}

// release counts one Subscribe less on c and stops c after the last one.
func (s *Subscriber) release(c *consumer) {
	s.mu.Lock()
	c.refs--
	last := c.refs == 0
	if last && s.consumers[c.spec.name] == c {
		delete(s.consumers, c.spec.name)
	}
	s.mu.Unlock()
	if last {
		c.shutdown()
	}
}

func (s *Subscriber) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Health returns nil while the subscriber's latest connection to every broker
// succeeded and no subscription has a group or fetch error, else what is
// wrong.
func (s *Subscriber) Health() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	consumers := make([]*consumer, 0, len(s.consumers))
	for _, c := range s.consumers {
		consumers = append(consumers, c)
	}
	s.mu.Unlock()
	var problems []string
	if err := s.conns.health(); err != nil {
		problems = append(problems, strings.TrimPrefix(err.Error(), "kafkapubsub: "))
	}
	if err := s.pub.Health(); err != nil {
		problems = append(problems, strings.TrimPrefix(err.Error(), "kafkapubsub: "))
	}
	for _, c := range consumers {
		if p := c.problem(); p != "" {
			problems = append(problems, p)
		}
	}
	if len(problems) == 0 {
		return nil
	}
	sort.Strings(problems)
	return fmt.Errorf("kafkapubsub: %s", strings.Join(problems, "; "))
}

// Close stops every subscription, commits the offsets of the acked messages
// and leaves the groups. It never deletes a group, its offsets or a topic.
// It is idempotent.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for _, c := range s.consumers {
		c.cancel()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return s.pub.Close()
}

// consumer is one group member on one topic, shared by the Subscribe calls
// for that topic.
type consumer struct {
	s      *Subscriber
	spec   topicSpec
	group  string
	client *kgo.Client
	ctx    context.Context
	cancel context.CancelFunc
	work   chan *delivery
	commit chan struct{}
	wg     sync.WaitGroup // poll loop, committer, nack and hand-back goroutines

	refs int // guarded by s.mu

	mu        sync.Mutex
	parts     map[int32]*window
	groupErr  error
	fetchErr  error
	errSince  time.Time
	commitErr error
	shutOnce  sync.Once
}

// window tracks the delivered records of one assigned partition, in offset
// order, until they are acked; the commit point is the offset after the
// longest acked prefix.
type window struct {
	revoked   bool
	entries   []*entry
	next      kgo.EpochOffset
	hasNext   bool
	committed int64
}

type entry struct {
	offset int64
	epoch  int32
	acked  bool
}

func (w *window) advance() {
	for len(w.entries) > 0 && w.entries[0].acked {
		e := w.entries[0]
		w.next = kgo.EpochOffset{Epoch: e.epoch, Offset: e.offset + 1}
		w.hasNext = true
		w.entries[0] = nil
		w.entries = w.entries[1:]
	}
}

type delivery struct {
	rec     *kgo.Record
	w       *window
	e       *entry
	attempt int
}

func (s *Subscriber) newConsumer(spec topicSpec, group string) (*consumer, error) {
	ctx, cancel := context.WithCancel(context.Background())
	c := &consumer{
		s:      s,
		spec:   spec,
		group:  group,
		ctx:    ctx,
		cancel: cancel,
		work:   make(chan *delivery),
		commit: make(chan struct{}, 1),
		parts:  map[int32]*window{},
	}
	reset := kgo.NewOffset().AtStart()
	if s.startsLatest(spec) {
		reset = kgo.NewOffset().AtEnd()
	}
	opts := append([]kgo.Opt{}, s.opts...)
	opts = append(opts,
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(spec.name),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(reset),
		kgo.SessionTimeout(s.cfg.SessionTimeout),
		kgo.HeartbeatInterval(s.cfg.HeartbeatInterval),
		kgo.FetchMaxPartitionBytes(MaxMessageBytes),
		kgo.FetchMaxBytes(MaxMessageBytes),
		kgo.OnPartitionsAssigned(c.assigned),
		kgo.AdjustFetchOffsetsFn(c.adjustOffsets),
		kgo.OnPartitionsRevoked(c.revoked),
		kgo.OnPartitionsLost(c.lost),
		kgo.WithHooks(c),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("kafkapubsub: creating the consumer of %s: %w", spec.name, err)
	}
	c.client = cl
	c.wg.Add(2)
	go c.poll()
	go c.committer()
	return c, nil
}

// OnGroupManageError implements kgo.HookGroupManageError.
func (c *consumer) OnGroupManageError(err error) {
	if errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.groupErr == nil && c.fetchErr == nil {
		c.errSince = time.Now()
	}
	c.groupErr = err
}

var _ kgo.HookGroupManageError = (*consumer)(nil)

func (c *consumer) problem() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.groupErr
	if err == nil {
		err = c.fetchErr
	}
	if err == nil {
		return ""
	}
	return fmt.Sprintf("subscription to %s (group %s) failing since %s: %v", c.spec.name, c.group, c.errSince.Format("15:04:05"), err)
}

func (c *consumer) assigned(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range m[c.spec.name] {
		c.parts[p] = &window{committed: -1}
	}
	c.groupErr = nil
}

// adjustOffsets starts a partition that has no committed offset at the end
// offset SubscribeInitialize read for it, when there is one, instead of the
// end of the topic at the time of the join.
func (c *consumer) adjustOffsets(_ context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	c.s.mu.Lock()
	start := c.s.starts[c.spec.name]
	c.s.mu.Unlock()
	for p, o := range offsets[c.spec.name] {
		if o.EpochOffset().Offset >= 0 {
			continue // committed
		}
		if at, ok := start[p]; ok {
			offsets[c.spec.name][p] = kgo.NewOffset().At(at)
		}
	}
	return offsets, nil
}

// revoked commits what was acked on the partitions taken away and forgets
// their windows; records of them still on their way are dropped.
func (c *consumer) revoked(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
	offsets := c.drop(m[c.spec.name])
	if len(offsets) == 0 {
		return
	}
	if err := c.commitSync(ctx, offsets); err != nil {
		c.s.logger.Info("kafkapubsub: committing offsets of revoked partitions failed; their acked messages may come again",
			watermill.LogFields{"topic": c.spec.name, "group": c.group, "err": err.Error()})
	}
}

func (c *consumer) lost(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	c.drop(m[c.spec.name])
}

// drop removes the windows of parts and returns their commit points.
func (c *consumer) drop(parts []int32) map[int32]kgo.EpochOffset {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[int32]kgo.EpochOffset{}
	for _, p := range parts {
		w := c.parts[p]
		if w == nil {
			continue
		}
		w.revoked = true
		if w.hasNext && w.next.Offset > w.committed {
			out[p] = w.next
		}
		delete(c.parts, p)
	}
	return out
}

// poll fetches records and hands them, one at a time, to the Subscribe
// goroutines through c.work.
func (c *consumer) poll() {
	defer c.wg.Done()
	for {
		fs := c.client.PollRecords(c.ctx, pollBatch)
		if c.ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.Canceled) {
				ferr = err
			}
		})
		c.mu.Lock()
		if ferr != nil {
			if c.fetchErr == nil && c.groupErr == nil {
				c.errSince = time.Now()
			}
			c.fetchErr = ferr
		} else {
			c.fetchErr = nil
		}
		c.mu.Unlock()
		if ferr != nil && fs.NumRecords() == 0 {
			select {
			case <-time.After(200 * time.Millisecond):
			case <-c.ctx.Done():
				return
			}
			continue
		}
		for it := fs.RecordIter(); !it.Done(); {
			d := c.track(it.Next())
			if d == nil {
				continue
			}
			if to := header(d.rec, RedeliverToHeader); to != "" && to != c.group {
				// A copy of a message nacked in another group.
				c.ack(d)
				continue
			}
			select {
			case c.work <- d:
			case <-c.ctx.Done():
				return
			}
		}
	}
}

// track records r in its partition's window; nil when the partition is
// not (or no longer) assigned.
func (c *consumer) track(r *kgo.Record) *delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.parts[r.Partition]
	if w == nil || w.revoked {
		return nil
	}
	e := &entry{offset: r.Offset, epoch: r.LeaderEpoch}
	w.entries = append(w.entries, e)
	attempt, err := strconv.Atoi(header(r, schema.DeliveryAttemptKey))
	if err != nil || attempt < 1 {
		attempt = 1
	}
	return &delivery{rec: r, w: w, e: e, attempt: attempt}
}

func (c *consumer) live(d *delivery) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !d.w.revoked
}

// ack marks d acked and lets the committer move the partition's commit point.
func (c *consumer) ack(d *delivery) {
	c.mu.Lock()
	if !d.e.acked {
		d.e.acked = true
		if !d.w.revoked {
			d.w.advance()
		}
	}
	c.mu.Unlock()
	select {
	case c.commit <- struct{}{}:
	default:
	}
}

// nack publishes a copy of d with the next attempt for this group after the
// nack delay, waits for the broker to confirm it, then acks d. It does not
// hold back the following messages. When the consumer stops first, d stays
// unacked and comes again from the broker.
func (c *consumer) nack(d *delivery) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		rec := redeliveryRecord(d.rec, d.attempt+1, c.group)
		for {
			t := time.NewTimer(c.s.cfg.NackDelay)
			select {
			case <-t.C:
			case <-c.ctx.Done():
				t.Stop()
				return
			}
			err := c.s.pub.produce(c.ctx, c.spec, []*kgo.Record{rec}, nil)
			if err == nil {
				c.ack(d)
				return
			}
			if c.ctx.Err() != nil {
				return
			}
			c.s.logger.Error("kafkapubsub: republishing a nacked message failed; retrying", err,
				watermill.LogFields{"topic": c.spec.name, "offset": d.rec.Offset})
		}
	}()
}

// handBack offers d to the other Subscribe goroutines of c.
func (c *consumer) handBack(d *delivery) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		select {
		case c.work <- d:
		case <-c.ctx.Done():
		}
	}()
}

// serve emits c's messages on out until ctx or c ends, up to AckWindow of
// them before the oldest is acked or nacked. Each message handed out is
// settled by a goroutine of its own; serve returns after they all ended.
func (c *consumer) serve(ctx context.Context, out chan<- *message.Message) {
	slots := make(chan struct{}, c.s.cfg.AckWindow)
	var settlers sync.WaitGroup
	defer settlers.Wait()
	for {
		// A place in the window first: with window 1 the next message waits
		// for the previous one's ack or nack.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		case <-c.ctx.Done():
			return
		}
		var d *delivery
		select {
		case d = <-c.work:
		case <-ctx.Done():
			return
		case <-c.ctx.Done():
			return
		}
		if !c.live(d) {
			<-slots
			continue
		}
		msg := watermillMessage(d)
		msgCtx, cancel := context.WithCancel(ctx)
		msg.SetContext(msgCtx)
		select {
		case out <- msg:
		case <-ctx.Done():
			cancel()
			c.handBack(d)
			return
		case <-c.ctx.Done():
			cancel()
			return
		}
		settlers.Add(1)
		go func() {
			defer settlers.Done()
			defer cancel()
			c.settle(ctx, d, msg)
			<-slots
		}()
	}
}

// settle waits for msg's ack or nack and passes it on. When ctx ends first
// the record, unless acked meanwhile, goes to another Subscribe call of c;
// when c ends first it stays unacked, unless acked meanwhile, and comes
// again when the group resumes.
func (c *consumer) settle(ctx context.Context, d *delivery, msg *message.Message) {
	select {
	case <-msg.Acked():
		c.ack(d)
	case <-msg.Nacked():
		c.nack(d)
	case <-ctx.Done():
		if acked(msg) {
			c.ack(d)
			return
		}
		c.handBack(d)
	case <-c.ctx.Done():
		// An ack given before c ended still counts: shutdown commits it.
		if acked(msg) {
			c.ack(d)
		}
	}
}

// acked reports whether msg was acked.
func acked(msg *message.Message) bool {
	select {
	case <-msg.Acked():
		return true
	default:
		return false
	}
}

// committer commits the acked prefix of each partition whenever it grows.
// One commit is in flight at a time, so commits batch themselves under load.
func (c *consumer) committer() {
	defer c.wg.Done()
	for {
		select {
		case <-c.commit:
			c.commitAcked(c.ctx)
		case <-c.ctx.Done():
			return
		}
	}
}

func (c *consumer) commitAcked(ctx context.Context) {
	c.mu.Lock()
	offsets := map[int32]kgo.EpochOffset{}
	windows := map[int32]*window{}
	for p, w := range c.parts {
		if !w.revoked && w.hasNext && w.next.Offset > w.committed {
			offsets[p] = w.next
			windows[p] = w
		}
	}
	c.mu.Unlock()
	if len(offsets) == 0 {
		return
	}
	err := c.commitSync(ctx, offsets)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			c.commitErr = err
			c.s.logger.Info("kafkapubsub: committing offsets failed; the next ack retries",
				watermill.LogFields{"topic": c.spec.name, "group": c.group, "err": err.Error()})
		}
		return
	}
	c.commitErr = nil
	for p, w := range windows {
		if offsets[p].Offset > w.committed {
			w.committed = offsets[p].Offset
		}
	}
}

func (c *consumer) commitSync(ctx context.Context, offsets map[int32]kgo.EpochOffset) error {
	var cerr error
	c.client.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{c.spec.name: offsets},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				cerr = err
				return
			}
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
						cerr = err
					}
				}
			}
		})
	return cerr
}

// shutdown stops c: no more fetches, the acked prefix committed, the group
// left. It runs once, after the last Subscribe on c ended.
func (c *consumer) shutdown() {
	c.shutOnce.Do(func() {
		c.cancel()
		c.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.RequestTimeout)
		c.commitAcked(ctx)
		cancel()
		c.client.Close()
	})
}

// header returns the value of r's last header named key, or "".
func header(r *kgo.Record, key string) string {
	v := ""
	for _, h := range r.Headers {
		if h.Key == key {
			v = string(h.Value)
		}
	}
	return v
}

// watermillMessage turns d into a watermill message: the UUID from UUIDHeader
// (a new one when a foreign producer did not set it), every other header as
// metadata (UTF-8), and schema.DeliveryAttemptKey set to the attempt.
func watermillMessage(d *delivery) *message.Message {
	id := ""
	md := make(message.Metadata, len(d.rec.Headers)+1)
	for _, h := range d.rec.Headers {
		switch h.Key {
		case UUIDHeader:
			id = string(h.Value)
		case RedeliverToHeader:
		default:
			md[h.Key] = string(h.Value)
		}
	}
	if id == "" {
		id = watermill.NewUUID()
	}
	md[schema.DeliveryAttemptKey] = strconv.Itoa(d.attempt)
	msg := message.NewMessage(id, d.rec.Value)
	msg.Metadata = md
	return msg
}
