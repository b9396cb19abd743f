package main

import (
	"context"
	"fmt"
	"io"

	"github.com/switchyard-go/switchyard/backend"
	"github.com/switchyard-go/switchyard/examples/pipeline"
	"github.com/switchyard-go/switchyard/processor"
	"github.com/switchyard-go/switchyard/router"
)

// runInProcess runs both processors and the client in this process on the
// memory backend.
func runInProcess(ctx context.Context, opts options, log io.Writer) (result, error) {
	cfg := router.Config{ID: "demo", Concurrency: opts.concurrency}
	wmLog := processor.WatermillLogger(processor.NewLogger(log, "warn"))
	mem := backend.NewMemory(wmLog)
	defer mem.Close()

	templater := pipeline.Templater{Templates: pipeline.DefaultTemplates}
	procs := []func(*router.Router) error{
		func(r *router.Router) error {
			return router.Handle(r, "prompt-template", promptQueue, requestQueue, templater.Render)
		},
		func(r *router.Router) error {
			return router.HandleStream(r, "echo-llm", requestQueue, responseQueue, pipeline.Echo)
		},
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	errs := make(chan error, len(procs))
	for i, setup := range procs {
		pcfg := cfg
		pcfg.ID = fmt.Sprintf("demo-processor-%d", i)
		r, err := router.New(pcfg, mem, wmLog)
		if err != nil {
			return result{}, err
		}
		if err := setup(r); err != nil {
			return result{}, err
		}
		go func() { errs <- r.Run(runCtx) }()
		select {
		case <-r.Running():
		case err := <-errs:
			return result{}, fmt.Errorf("processor did not start: %w", err)
		}
	}
	fmt.Fprintf(log, "demo: prompt-template and echo-llm running in process on the memory backend\n")

	res, err := exchange(ctx, mem, opts.requests, opts.timeout, log)
	stop()
	for range procs {
		if rerr := <-errs; rerr != nil && err == nil {
			err = rerr
		}
	}
	return res, err
}
