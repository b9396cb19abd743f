package flow

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/rrclient"
	"github.com/switchyard-go/switchyard/schema"
)

// configClient reaches the configuration service over its queues.
type configClient struct {
	c *rrclient.Client[schema.ConfigRequest, schema.ConfigResponse]
}

func newConfigClient(ctx context.Context, b router.Backend, cfg Config) (*configClient, error) {
	c, err := rrclient.New[schema.ConfigRequest, schema.ConfigResponse](ctx, b, rrclient.Config{
		Request: cfg.Requests, Response: cfg.Responses, Timeout: cfg.Timeout,
	})
	if err != nil {
		return nil, fmt.Errorf("flow: configuration client: %w", err)
	}
	return &configClient{c: c}, nil
}

// Request sends req and waits for the answer. An Error answer is returned
// as the response, so the caller reports it with the request.
func (c *configClient) Request(ctx context.Context, req *schema.ConfigRequest) (*schema.ConfigResponse, error) {
	resp, err := c.c.Request(ctx, req)
	var re *rrclient.ResponseError
	if errors.As(err, &re) {
		return &schema.ConfigResponse{Error: &schema.Error{Type: re.Type, Message: re.Message}}, nil
	}
	return resp, err
}

// Close ends the client.
func (c *configClient) Close() error { return c.c.Close() }
