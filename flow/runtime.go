package flow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

// ConfigService answers the configuration protocol's requests. The Runtime
// reaches TrustGraph's configuration service through a request/response
// client on Config.Requests/Config.Responses unless one is given.
type ConfigService interface {
	Request(ctx context.Context, req *schema.ConfigRequest) (*schema.ConfigResponse, error)
}

// Config configures a Runtime.
type Config struct {
	// ID is the processor id: it selects the configuration entries of type
	// processor:{ID} and names the subscriptions. Required.
	ID string
	// Push is the configuration push queue. Default notify:tg:config.
	Push schema.Topic
	// Requests and Responses are the configuration service's queues.
	// Default request:tg:config and response:tg:config.
	Requests, Responses schema.Topic
	// Timeout bounds one configuration request. Default 60s
	// (TrustGraph's --config-timeout).
	Timeout time.Duration
	// RetryInterval is the pause between attempts to fetch the
	// configuration at start. Default 2s, as TrustGraph.
	RetryInterval time.Duration
	// Router configures each flow's router; its ID is ignored.
	Router router.Config
	// Service, if set, answers configuration requests instead of a client
	// on Requests/Responses.
	Service ConfigService
	// Observer, if set, observes every flow's router (metrics).
	Observer router.Observer
	// OnFlowStarted and OnFlowStopped, if set, are called after a flow's
	// router is running and after it stopped.
	OnFlowStarted, OnFlowStopped func(FlowInfo)
}

// Defaults of Config.
const (
	DefaultTimeout       = 60 * time.Second
	DefaultRetryInterval = 2 * time.Second
)

func (c *Config) setDefaults() {
	if c.Push == (schema.Topic{}) {
		c.Push = schema.ConfigPushQueue
	}
	if c.Requests == (schema.Topic{}) {
		c.Requests = schema.ConfigRequestQueue
	}
	if c.Responses == (schema.Topic{}) {
		c.Responses = schema.ConfigResponseQueue
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = DefaultRetryInterval
	}
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	if c.ID == "" {
		return errors.New("flow: an id is required (it selects processor:{id} entries)")
	}
	if c.Timeout < 0 || c.RetryInterval < 0 {
		return errors.New("flow: timeout and retry interval must not be negative")
	}
	for _, t := range []schema.Topic{c.Push, c.Requests, c.Responses} {
		if err := t.Validate(); err != nil {
			return fmt.Errorf("flow: %w", err)
		}
	}
	return c.Router.Validate()
}

// FlowInfo describes one running flow.
type FlowInfo struct {
	// Workspace and Flow identify the flow.
	Workspace, Flow string
	// Handlers are its router's handlers, with their queues and
	// subscriptions.
	Handlers []router.HandlerInfo
}

// flowKey identifies a flow.
type flowKey struct{ workspace, flow string }

// running is a flow whose router runs.
type running struct {
	def    string // the definition it was started from
	inst   *Instance
	router *router.Router
	cancel context.CancelFunc
	done   chan error
}

// Runtime starts and stops a processor's flows as the configuration says.
type Runtime struct {
	cfg     Config
	backend router.Backend
	logger  watermill.LoggerAdapter
	specs   []Spec
	key     string // processor:{id}

	mu      sync.Mutex
	flows   map[flowKey]*running
	version int64
	routers map[*router.Router]struct{}
	stopped []*router.Router // kept for their final counts
	ready   chan struct{}
}

// New returns a Runtime for the processor whose specs are given.
func New(cfg Config, b router.Backend, logger watermill.LoggerAdapter, specs ...Spec) (*Runtime, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if b == nil {
		return nil, errors.New("flow: a backend is required")
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	seen := map[string]bool{}
	for _, s := range specs {
		if s.register == nil {
			continue
		}
		if seen[s.input] {
			return nil, fmt.Errorf("flow: two handlers consume the spec %q", s.input)
		}
		seen[s.input] = true
	}
	return &Runtime{
		cfg: cfg, backend: b, logger: logger.With(watermill.LogFields{"processor": cfg.ID}), specs: specs,
		key: "processor:" + cfg.ID, flows: map[flowKey]*running{}, routers: map[*router.Router]struct{}{},
		ready: make(chan struct{}),
	}, nil
}

// Ready is closed once the configuration was fetched and the flows it
// names were started.
func (rt *Runtime) Ready() <-chan struct{} { return rt.ready }

// Version returns the configuration version last applied.
func (rt *Runtime) Version() int64 {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.version
}

// Flows describes the running flows, ordered by workspace and flow.
func (rt *Runtime) Flows() []FlowInfo {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	out := make([]FlowInfo, 0, len(rt.flows))
	for k, f := range rt.flows {
		out = append(out, FlowInfo{Workspace: k.workspace, Flow: k.flow, Handlers: f.router.Handlers()})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Workspace != out[j].Workspace {
			return out[i].Workspace < out[j].Workspace
		}
		return out[i].Flow < out[j].Flow
	})
	return out
}

// Routers returns the routers of the running flows and of the flows that
// ran and stopped, whose counts still belong in metrics.
func (rt *Runtime) Routers() []*router.Router {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	out := slices.Collect(maps.Keys(rt.routers))
	return append(out, rt.stopped...)
}

// Run follows the configuration until ctx is cancelled, then stops every
// flow (each drains as a router does) and returns. It returns an error only
// when the push queue cannot be subscribed or a flow did not stop cleanly.
func (rt *Runtime) Run(ctx context.Context) error {
	pushes, stopPush, err := rt.subscribePush(ctx)
	if err != nil {
		return err
	}
	defer stopPush()
	svc := rt.cfg.Service
	if svc == nil {
		c, err := newConfigClient(ctx, rt.backend, rt.cfg)
		if err != nil {
			return err
		}
		defer c.Close()
		svc = c
	}

	// Startup: the workspaces holding processor:{id}, then their entries.
	for {
		err := rt.fetchAll(ctx, svc)
		if err == nil {
			break
		}
		rt.logger.Error("Fetching the flow configuration failed; retrying", err, watermill.LogFields{"retry_in": rt.cfg.RetryInterval.String()})
		select {
		case <-ctx.Done():
			return rt.stopAll()
		case <-time.After(rt.cfg.RetryInterval):
		}
	}
	close(rt.ready)

	for {
		select {
		case <-ctx.Done():
			return rt.stopAll()
		case push, ok := <-pushes:
			if !ok {
				stopErr := rt.stopAll()
				if ctx.Err() != nil {
					// The subscription ended because ctx did: a normal stop.
					return stopErr
				}
				return errors.Join(errors.New("flow: the configuration push subscription ended"), stopErr)
			}
			rt.onPush(ctx, svc, push)
		}
	}
}

// subscribePush subscribes to the push queue with a subscription of its own,
// before anything is fetched, so no change between fetch and subscribe is
// missed.
func (rt *Runtime) subscribePush(ctx context.Context) (<-chan *schema.ConfigPush, func(), error) {
	sub, err := rt.backend.NewSubscriber(router.SubscribeOptions{
		Subscription: watermill.NewUUID(), Exclusive: true, InitialPosition: router.PositionLatest,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("flow: subscribing to %s: %w", rt.cfg.Push, err)
	}
	if init, ok := sub.(message.SubscribeInitializer); ok {
		if err := init.SubscribeInitialize(rt.cfg.Push.String()); err != nil {
			_ = sub.Close()
			return nil, nil, fmt.Errorf("flow: subscribing to %s: %w", rt.cfg.Push, err)
		}
	}
	subCtx, cancel := context.WithCancel(ctx)
	msgs, err := sub.Subscribe(subCtx, rt.cfg.Push.String())
	if err != nil {
		cancel()
		_ = sub.Close()
		return nil, nil, fmt.Errorf("flow: subscribing to %s: %w", rt.cfg.Push, err)
	}
	out := make(chan *schema.ConfigPush, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		for msg := range msgs {
			var push schema.ConfigPush
			if err := schema.Unmarshal(msg.Payload, &push); err != nil {
				rt.logger.Error("Ignoring a configuration push that cannot be decoded", err, nil)
				msg.Ack()
				continue
			}
			msg.Ack()
			select {
			case out <- &push:
			case <-subCtx.Done():
				return
			}
		}
	}()
	return out, func() {
		cancel()
		<-done
		_ = sub.Close()
	}, nil
}

// fetchAll applies the configuration of every workspace holding entries of
// the processor's type.
func (rt *Runtime) fetchAll(ctx context.Context, svc ConfigService) error {
	resp, err := rt.request(ctx, svc, &schema.ConfigRequest{Operation: "getkeys-all-ws", Type: rt.key})
	if err != nil {
		return err
	}
	version := resp.Version
	workspaces := map[string]bool{}
	for _, v := range resp.Values {
		workspaces[v.Workspace] = true
	}
	for _, ws := range slices.Sorted(maps.Keys(workspaces)) {
		v, err := rt.applyWorkspace(ctx, svc, ws)
		if err != nil {
			return err
		}
		version = max(version, v)
	}
	rt.mu.Lock()
	rt.version = max(rt.version, version)
	rt.mu.Unlock()
	return nil
}

// onPush applies a push newer than the version applied, fetching only the
// workspaces whose processor entries changed. A failed fetch leaves the
// version where it was, so the next push tries again.
func (rt *Runtime) onPush(ctx context.Context, svc ConfigService, push *schema.ConfigPush) {
	rt.mu.Lock()
	current := rt.version
	rt.mu.Unlock()
	if push.Version <= current {
		return
	}
	workspaces := push.Changes[rt.key]
	for _, ws := range workspaces {
		if _, err := rt.applyWorkspace(ctx, svc, ws); err != nil {
			rt.logger.Error("Applying a configuration change failed", err, watermill.LogFields{"workspace": ws, "version": push.Version})
			return
		}
	}
	rt.mu.Lock()
	rt.version = max(rt.version, push.Version)
	rt.mu.Unlock()
}

// applyWorkspace fetches the processor's entries of ws and makes the running
// flows of ws match them. It returns the configuration version read.
func (rt *Runtime) applyWorkspace(ctx context.Context, svc ConfigService, ws string) (int64, error) {
	if strings.HasPrefix(ws, "_") {
		return 0, nil
	}
	resp, err := rt.request(ctx, svc, &schema.ConfigRequest{Operation: "getvalues", Workspace: ws, Type: rt.key})
	if err != nil {
		return 0, err
	}
	wanted := map[string]string{}
	for _, v := range resp.Values {
		wanted[v.Key] = v.Value
	}
	rt.mu.Lock()
	var stop []flowKey
	for k, f := range rt.flows {
		if k.workspace != ws {
			continue
		}
		if def, ok := wanted[k.flow]; !ok || def != f.def {
			stop = append(stop, k)
		}
	}
	rt.mu.Unlock()
	for _, k := range stop {
		rt.stopFlow(k)
	}
	for _, name := range slices.Sorted(maps.Keys(wanted)) {
		k := flowKey{ws, name}
		rt.mu.Lock()
		_, isRunning := rt.flows[k]
		rt.mu.Unlock()
		if isRunning {
			continue
		}
		if err := rt.startFlow(ctx, k, wanted[name]); err != nil {
			// A broken definition stops only its own flow.
			rt.logger.Error("Cannot start flow", err, watermill.LogFields{"workspace": ws, "flow": name})
		}
	}
	return resp.Version, nil
}

func (rt *Runtime) request(ctx context.Context, svc ConfigService, req *schema.ConfigRequest) (*schema.ConfigResponse, error) {
	rctx, cancel := context.WithTimeout(ctx, rt.cfg.Timeout)
	defer cancel()
	resp, err := svc.Request(rctx, req)
	if err != nil {
		return nil, fmt.Errorf("config %s %s: %w", req.Operation, req.Type, err)
	}
	if resp.Error != nil {
		return nil, fmt.Errorf("config %s %s: %s: %s", req.Operation, req.Type, resp.Error.Type, resp.Error.Message)
	}
	return resp, nil
}

// definition is the value of a processor:{id} entry.
type definition struct {
	Topics     map[string]string          `json:"topics"`
	Parameters map[string]json.RawMessage `json:"parameters"`
}

// startFlow starts the router of one flow and waits until it runs.
func (rt *Runtime) startFlow(ctx context.Context, k flowKey, def string) error {
	var d definition
	if err := json.Unmarshal([]byte(def), &d); err != nil {
		return fmt.Errorf("definition is not JSON {topics, parameters}: %w", err)
	}
	inst := &Instance{Workspace: k.workspace, Flow: k.flow, Topics: d.Topics, Parameters: d.Parameters}
	rcfg := rt.cfg.Router
	rcfg.ID = rt.cfg.ID
	r, err := router.New(rcfg, rt.backend, rt.logger.With(watermill.LogFields{"workspace": k.workspace, "flow": k.flow}))
	if err != nil {
		return err
	}
	for _, s := range rt.specs {
		if s.register == nil {
			continue
		}
		in, err := rt.topic(d, s.input)
		if err != nil {
			return err
		}
		var out *schema.Topic
		if s.output != "" {
			t, err := rt.topic(d, s.output)
			if err != nil {
				return err
			}
			out = &t
		}
		opts := append([]router.HandlerOption{router.WithSubscription(SubscriptionName(rt.cfg.ID, k.workspace, k.flow, s.input))}, s.opts...)
		if err := s.register(r, in, out, inst, opts); err != nil {
			return err
		}
	}
	if rt.cfg.Observer != nil {
		r.Observe(rt.cfg.Observer)
	}
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f := &running{def: def, inst: inst, router: r, cancel: cancel, done: make(chan error, 1)}
	go func() { f.done <- r.Run(fctx) }()
	select {
	case <-r.Running():
	case err := <-f.done:
		cancel()
		return fmt.Errorf("router did not start: %w", err)
	}
	rt.mu.Lock()
	rt.flows[k] = f
	rt.routers[r] = struct{}{}
	rt.mu.Unlock()
	info := FlowInfo{Workspace: k.workspace, Flow: k.flow, Handlers: r.Handlers()}
	rt.logger.Info("Flow started", watermill.LogFields{"workspace": k.workspace, "flow": k.flow, "handlers": describe(info.Handlers)})
	if rt.cfg.OnFlowStarted != nil {
		rt.cfg.OnFlowStarted(info)
	}
	return nil
}

// topic parses the queue the definition gives to spec.
func (rt *Runtime) topic(d definition, spec string) (schema.Topic, error) {
	q, ok := d.Topics[spec]
	if !ok {
		return schema.Topic{}, fmt.Errorf("the definition has no topic for spec %q (it has %s)", spec, strings.Join(slices.Sorted(maps.Keys(d.Topics)), ", "))
	}
	t, err := schema.ParseTopic(q)
	if err != nil {
		return schema.Topic{}, fmt.Errorf("spec %q: %w", spec, err)
	}
	return t, nil
}

// stopFlow stops one flow's router; its messages in flight drain first.
func (rt *Runtime) stopFlow(k flowKey) error {
	rt.mu.Lock()
	f, ok := rt.flows[k]
	if ok {
		delete(rt.flows, k)
	}
	rt.mu.Unlock()
	if !ok {
		return nil
	}
	f.cancel()
	err := <-f.done
	rt.mu.Lock()
	delete(rt.routers, f.router)
	rt.stopped = append(rt.stopped, f.router)
	rt.mu.Unlock()
	rt.logger.Info("Flow stopped", watermill.LogFields{"workspace": k.workspace, "flow": k.flow})
	if rt.cfg.OnFlowStopped != nil {
		rt.cfg.OnFlowStopped(FlowInfo{Workspace: k.workspace, Flow: k.flow, Handlers: f.router.Handlers()})
	}
	if err != nil {
		return fmt.Errorf("flow %s/%s: %w", k.workspace, k.flow, err)
	}
	return nil
}

// stopAll stops every flow at once and joins their errors.
func (rt *Runtime) stopAll() error {
	rt.mu.Lock()
	keys := slices.Collect(maps.Keys(rt.flows))
	rt.mu.Unlock()
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = rt.stopFlow(k)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// SubscriptionName is TrustGraph's name of a flow consumer's subscription:
// {id}--{workspace}--{flow}--{spec}.
func SubscriptionName(id, workspace, flow, spec string) string {
	return id + "--" + workspace + "--" + flow + "--" + spec
}

func describe(hs []router.HandlerInfo) string {
	parts := make([]string, 0, len(hs))
	for _, h := range hs {
		out := "(sink)"
		if h.Output != nil {
			out = h.Output.String()
		}
		parts = append(parts, fmt.Sprintf("%s: %s -> %s [%s]", h.Name, h.Input, out, h.Subscription))
	}
	return strings.Join(parts, "; ")
}
