package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/switchyard-go/switchyard/router"
)

// startTimeout bounds how long a processor may take to start consuming.
const startTimeout = 60 * time.Second

// routerProcessor is the switchyard variant: the echo work as a typed
// handler on a router.Router with the default middleware stack.
type routerProcessor struct {
	cancel  context.CancelFunc
	done    chan error
	backend router.Backend // closed by Stop when not nil
}

// startRouter runs the echo handler between spec.in and spec.out on
// backend with spec.concurrency, and returns once the router consumes. When
// own is set, Stop closes the backend too.
func startRouter(ctx context.Context, backend router.Backend, own bool, spec runSpec, logger watermill.LoggerAdapter) (processor, error) {
	cfg := router.Config{ID: spec.name, Concurrency: spec.concurrency}
	r, err := router.New(cfg, backend, logger)
	if err != nil {
		return nil, err
	}
	if err := router.Handle(r, "echo", spec.in, spec.out, Echo); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	p := &routerProcessor{cancel: cancel, done: make(chan error, 1)}
	if own {
		p.backend = backend
	}
	go func() { p.done <- r.Run(rctx) }()
	t := time.NewTimer(startTimeout)
	defer t.Stop()
	select {
	case <-r.Running():
		return p, nil
	case err := <-p.done:
		p.done <- err
		_ = p.Stop()
		if err == nil {
			err = errors.New("the router stopped before it ran")
		}
		return nil, err
	case <-t.C:
		_ = p.Stop()
		return nil, fmt.Errorf("the router was not running after %s", startTimeout)
	case <-ctx.Done():
		_ = p.Stop()
		return nil, ctx.Err()
	}
}

// Stop cancels the router, waits for it to drain and closes its own backend.
func (p *routerProcessor) Stop() error {
	p.cancel()
	err := <-p.done
	p.done <- err
	if p.backend != nil {
		if cerr := p.backend.Close(); cerr != nil && err == nil {
			err = cerr
		}
		p.backend = nil
	}
	return err
}

// PID is 0: the router runs in this process.
func (p *routerProcessor) PID() int { return 0 }
