package embedded

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// warnLimiter is a slog.Handler that passes records below WARN through and
// lets at most one WARN-or-worse line per message and client through per
// interval. Each line that gets through carries "events", the number of
// events it stands for since the previous line of the same message and
// client (1 when nothing was held back). Events held back and not followed
// by another within the interval are reported by a summary line when the
// interval has passed, so no count is lost.
type warnLimiter struct {
	next  slog.Handler
	state *warnState
}

type warnState struct {
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	keys map[string]*warnKey

	stop chan struct{}
	done chan struct{}
}

type warnKey struct {
	last    time.Time    // when the last line got through
	held    int          // events held back since then
	record  slog.Record  // the last event held back
	handler slog.Handler // the handler it was meant for
}

// newWarnLimiter wraps next; call close to stop its summary goroutine.
func newWarnLimiter(next slog.Handler, every time.Duration) *warnLimiter {
	st := &warnState{every: every, now: time.Now, keys: map[string]*warnKey{}, stop: make(chan struct{}), done: make(chan struct{})}
	go st.flushLoop()
	return &warnLimiter{next: next, state: st}
}

// close reports the events still held back and stops the summary goroutine.
func (w *warnLimiter) close() {
	select {
	case <-w.state.stop:
		return
	default:
	}
	close(w.state.stop)
	<-w.state.done
	w.state.flush(true)
}

// Enabled implements slog.Handler.
func (w *warnLimiter) Enabled(ctx context.Context, l slog.Level) bool { return w.next.Enabled(ctx, l) }

// WithAttrs implements slog.Handler.
func (w *warnLimiter) WithAttrs(as []slog.Attr) slog.Handler {
	return &warnLimiter{next: w.next.WithAttrs(as), state: w.state}
}

// WithGroup implements slog.Handler.
func (w *warnLimiter) WithGroup(name string) slog.Handler {
	return &warnLimiter{next: w.next.WithGroup(name), state: w.state}
}

// Handle implements slog.Handler.
func (w *warnLimiter) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return w.next.Handle(ctx, r)
	}
	key := r.Message
	refused := false
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "client":
			key += "\x00" + a.Value.String()
		case "hook":
			// mochi's line for a publish the queue hook refused: the hook
			// logs its own, with the client and the limit.
			refused = r.Message == "publish packet error" && a.Value.String() == (&router{}).ID()
		}
		return true
	})
	if refused {
		return nil
	}
	st := w.state
	now := st.now()
	st.mu.Lock()
	k := st.keys[key]
	if k != nil && now.Sub(k.last) < st.every {
		k.held++
		k.record = r.Clone()
		k.handler = w.next
		st.mu.Unlock()
		return nil
	}
	events := 1
	if k == nil {
		k = &warnKey{}
		st.keys[key] = k
	} else {
		events += k.held
	}
	k.last, k.held, k.record, k.handler = now, 0, slog.Record{}, nil
	st.mu.Unlock()
	r = r.Clone()
	r.AddAttrs(slog.Int("events", events))
	return w.next.Handle(ctx, r)
}

func (st *warnState) flushLoop() {
	defer close(st.done)
	t := time.NewTicker(st.every / 4)
	defer t.Stop()
	for {
		select {
		case <-st.stop:
			return
		case <-t.C:
			st.flush(false)
		}
	}
}

// flush writes a summary line for every key whose held-back events are at
// least one interval older than its last line (all of them when final), and
// forgets keys that were quiet for two intervals.
func (st *warnState) flush(final bool) {
	now := st.now()
	type out struct {
		h slog.Handler
		r slog.Record
	}
	var lines []out
	st.mu.Lock()
	for key, k := range st.keys {
		switch {
		case k.held > 0 && (final || now.Sub(k.last) >= st.every):
			r := k.record.Clone()
			r.Time = now
			r.AddAttrs(slog.Int("events", k.held))
			lines = append(lines, out{k.handler, r})
			k.last, k.held, k.record, k.handler = now, 0, slog.Record{}, nil
		case k.held == 0 && now.Sub(k.last) >= 2*st.every:
			delete(st.keys, key)
		}
	}
	st.mu.Unlock()
	for _, l := range lines {
		_ = l.h.Handle(context.Background(), l.r)
	}
}
