// Package configsvc is a configuration service that speaks TrustGraph
// 2.11.1's configuration protocol (request:tg:config, response:tg:config,
// notify:tg:config) from memory. It lets switchyard-only deployments and
// tests run flow processors without TrustGraph's Python config service: it
// answers getkeys-all-ws, getvalues, getvalues-all-ws, get, list, put,
// delete and config, and after every change publishes a ConfigPush poke
// naming the types and workspaces touched, as TrustGraph's does.
package configsvc

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

// Config configures a Service.
type Config struct {
	// Requests, Responses and Push are the protocol's queues. Defaults
	// request:tg:config, response:tg:config and notify:tg:config.
	Requests, Responses, Push schema.Topic
}

func (c *Config) setDefaults() {
	if c.Requests == (schema.Topic{}) {
		c.Requests = schema.ConfigRequestQueue
	}
	if c.Responses == (schema.Topic{}) {
		c.Responses = schema.ConfigResponseQueue
	}
	if c.Push == (schema.Topic{}) {
		c.Push = schema.ConfigPushQueue
	}
}

// Service holds the configuration: workspace -> type -> key -> value.
type Service struct {
	cfg Config
	pub message.Publisher

	mu      sync.Mutex
	version int64
	data    map[string]map[string]map[string]string
}

// New returns an empty Service that pushes changes through pub.
func New(cfg Config, pub message.Publisher) (*Service, error) {
	cfg.setDefaults()
	if pub == nil {
		return nil, errors.New("configsvc: a publisher is required")
	}
	return &Service{cfg: cfg, pub: pub, data: map[string]map[string]map[string]string{}}, nil
}

// Register adds the request handler to r.
func (s *Service) Register(r *router.Router, opts ...router.HandlerOption) error {
	return router.Handle(r, "config", s.cfg.Requests, s.cfg.Responses, s.Handle, opts...)
}

// Version returns the current configuration version.
func (s *Service) Version() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// Put sets values in workspace and pushes the change.
func (s *Service) Put(ctx context.Context, workspace string, values ...schema.ConfigValue) error {
	_, err := s.Handle(ctx, &schema.ConfigRequest{Operation: "put", Workspace: workspace, Values: values})
	return err
}

// Delete removes keys from workspace and pushes the change.
func (s *Service) Delete(ctx context.Context, workspace string, keys ...schema.ConfigKey) error {
	_, err := s.Handle(ctx, &schema.ConfigRequest{Operation: "delete", Workspace: workspace, Keys: keys})
	return err
}

// Handle answers one configuration request. Errors in the request are
// answered with an Error response, as TrustGraph's service answers them.
func (s *Service) Handle(ctx context.Context, req *schema.ConfigRequest) (*schema.ConfigResponse, error) {
	s.mu.Lock()
	resp, changes, err := s.apply(req)
	s.mu.Unlock()
	if err != nil {
		return &schema.ConfigResponse{Version: s.Version(), Error: &schema.Error{Type: "bad-request", Message: err.Error()}}, nil
	}
	if changes != nil {
		if err := s.push(ctx, resp.Version, changes); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// apply carries out req under the lock and returns the changes to push.
func (s *Service) apply(req *schema.ConfigRequest) (*schema.ConfigResponse, map[string][]string, error) {
	resp := &schema.ConfigResponse{Version: s.version}
	needWorkspace := func() error {
		if req.Workspace == "" {
			return fmt.Errorf("operation %s needs a workspace", req.Operation)
		}
		return nil
	}
	switch req.Operation {
	case "getkeys-all-ws":
		for _, ws := range slices.Sorted(maps.Keys(s.data)) {
			for _, k := range slices.Sorted(maps.Keys(s.data[ws][req.Type])) {
				resp.Values = append(resp.Values, schema.ConfigValue{Type: req.Type, Key: k, Workspace: ws})
			}
		}
	case "getvalues-all-ws":
		for _, ws := range slices.Sorted(maps.Keys(s.data)) {
			for _, k := range slices.Sorted(maps.Keys(s.data[ws][req.Type])) {
				resp.Values = append(resp.Values, schema.ConfigValue{Type: req.Type, Key: k, Value: s.data[ws][req.Type][k], Workspace: ws})
			}
		}
	case "getvalues":
		if err := needWorkspace(); err != nil {
			return nil, nil, err
		}
		items := s.data[req.Workspace][req.Type]
		for _, k := range slices.Sorted(maps.Keys(items)) {
			resp.Values = append(resp.Values, schema.ConfigValue{Type: req.Type, Key: k, Value: items[k]})
		}
	case "get":
		if err := needWorkspace(); err != nil {
			return nil, nil, err
		}
		for _, k := range req.Keys {
			v, ok := s.data[req.Workspace][k.Type][k.Key]
			if !ok {
				return nil, nil, fmt.Errorf("key %s/%s not found", k.Type, k.Key)
			}
			resp.Values = append(resp.Values, schema.ConfigValue{Type: k.Type, Key: k.Key, Value: v})
		}
	case "list":
		if err := needWorkspace(); err != nil {
			return nil, nil, err
		}
		resp.Directory = slices.Sorted(maps.Keys(s.data[req.Workspace][req.Type]))
	case "config":
		if err := needWorkspace(); err != nil {
			return nil, nil, err
		}
		resp.Config = map[string]map[string]string{}
		for t, items := range s.data[req.Workspace] {
			resp.Config[t] = maps.Clone(items)
		}
	case "put", "delete":
		if err := needWorkspace(); err != nil {
			return nil, nil, err
		}
		changes := map[string][]string{}
		ws := s.data[req.Workspace]
		if ws == nil {
			ws = map[string]map[string]string{}
			s.data[req.Workspace] = ws
		}
		if req.Operation == "put" {
			for _, v := range req.Values {
				if ws[v.Type] == nil {
					ws[v.Type] = map[string]string{}
				}
				ws[v.Type][v.Key] = v.Value
				changes[v.Type] = []string{req.Workspace}
			}
		} else {
			for _, k := range req.Keys {
				delete(ws[k.Type], k.Key)
				changes[k.Type] = []string{req.Workspace}
			}
		}
		s.version++
		resp.Version = s.version
		if strings.HasPrefix(req.Workspace, "_") {
			// Reserved workspaces are never announced.
			return resp, nil, nil
		}
		return resp, changes, nil
	default:
		return nil, nil, fmt.Errorf("unknown operation %q", req.Operation)
	}
	return resp, nil, nil
}

// push announces a new version and the types and workspaces it changed.
func (s *Service) push(_ context.Context, version int64, changes map[string][]string) error {
	payload, err := schema.Marshal(&schema.ConfigPush{Version: version, Changes: changes})
	if err != nil {
		return err
	}
	msg := message.NewMessage(watermill.NewUUID(), payload)
	if err := s.pub.Publish(s.cfg.Push.String(), msg); err != nil {
		return fmt.Errorf("configsvc: pushing version %d: %w", version, err)
	}
	return nil
}
