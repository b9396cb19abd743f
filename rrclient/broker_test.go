package rrclient

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/switchyard-go/switchyard/backend"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/mqttpubsub/embedded"
	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

// The same exchanges as on the memory backend, on real brokers, with the
// TrustGraph queue classes: requests on a shared subscription of
// request:tg:…, responses through each client's own exclusive subscription
// of response:tg:….

func TestEmbeddedMQTT(t *testing.T) {
	broker, err := embedded.Start(context.Background(), embedded.Config{Listen: "127.0.0.1:0", InMemory: true})
	if err != nil {
		t.Fatalf("starting the embedded MQTT broker: %v", err)
	}
	t.Cleanup(func() { _ = broker.Close() })
	host, port, err := net.SplitHostPort(broker.Addr())
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	cfg := backend.Config{Name: backend.MQTT, ClientName: "rr-test-" + watermill.NewShortUUID(), MQTT: backend.MQTTSettings{Host: host, Port: p}}
	cfg.MQTT.ConnectTimeout = 5 * time.Second
	brokerCases(t, func(t *testing.T) router.Backend { return connect(t, cfg) })
}

func TestPulsar(t *testing.T) {
	url := brokertest.Env(t, "SWITCHYARD_PULSAR_URL")
	admin := brokertest.Env(t, "SWITCHYARD_PULSAR_ADMIN_URL")
	for _, ns := range []string{"tg/request", "tg/response"} {
		brokertest.EnsurePulsarNamespace(t, admin, ns)
	}
	cfg := backend.Config{Name: backend.Pulsar, ClientName: "rr-test"}
	cfg.Pulsar.URL = url
	brokerCases(t, func(t *testing.T) router.Backend { return connect(t, cfg) })

	// The response subscription is the client's own: exclusive, named
	// after Subscription(), on the non-persistent response topic.
	t.Run("subscription", func(t *testing.T) {
		b := connect(t, cfg)
		in, out := queues()
		serve(t, b, in, out, shout)
		c := newClient(t, b, in, out, Config{Timeout: 30 * time.Second})
		if _, err := c.Request(context.Background(), &tcReq{Prompt: "x"}); err != nil {
			t.Fatal(err)
		}
		var stats struct {
			Subscriptions map[string]struct {
				Type string `json:"type"`
			} `json:"subscriptions"`
		}
		statsURL := admin + "/admin/v2/non-persistent/tg/response/" + out.Queue + "/stats"
		resp, err := http.Get(statsURL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", statsURL, resp.Status)
		}
		if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
			t.Fatal(err)
		}
		if len(stats.Subscriptions) != 1 {
			t.Fatalf("subscriptions on %s: %v, want the client's alone", out, stats.Subscriptions)
		}
		for name, sub := range stats.Subscriptions {
			if !strings.HasPrefix(name, c.Subscription()) || sub.Type != "Exclusive" {
				t.Fatalf("subscription %q of type %q, want an exclusive one named after %q", name, sub.Type, c.Subscription())
			}
			t.Logf("the response subscription on the broker: %s (%s)", name, sub.Type)
		}
	})
}

// connect opens the backend cfg names, closed at the end of the test.
func connect(t *testing.T, cfg backend.Config) router.Backend {
	t.Helper()
	b, err := backend.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("connecting to %s: %v", cfg.Name, err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("closing the %s backend: %v", cfg.Name, err)
		}
	})
	return b
}

// brokerCases runs the single, error and stream exchanges on the backends
// open returns.
func brokerCases(t *testing.T, open func(t *testing.T) router.Backend) {
	t.Run("single", func(t *testing.T) {
		b := open(t)
		in, out := queues()
		serve(t, b, in, out, func(ctx context.Context, req *tcReq) (*tcResp, error) {
			if req.Prompt == "fail" {
				return &tcResp{Error: &schema.Error{Type: "llm-error", Message: "no model"}}, nil
			}
			return shout(ctx, req)
		})
		c := newClient(t, b, in, out, Config{Timeout: 30 * time.Second})
		for i := 0; i < 20; i++ {
			prompt := "hello " + itoa(i)
			resp, err := c.Request(context.Background(), &tcReq{Prompt: prompt})
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			if resp.Response != strings.ToUpper(prompt) || !resp.EndOfStream {
				t.Fatalf("request %d: response %+v", i, resp)
			}
		}
		_, err := c.Request(context.Background(), &tcReq{Prompt: "fail"})
		var re *ResponseError
		if !errors.As(err, &re) || re.Type != "llm-error" || re.Message != "no model" {
			t.Fatalf("error response: %v", err)
		}
		if s := c.Stats(); s.Requests != 21 || s.Received != 21 || s.Orphans != 0 {
			t.Fatalf("stats %+v", s)
		}
	})
	t.Run("stream", func(t *testing.T) {
		b := open(t)
		in, out := queues()
		serveStream(t, b, in, out, chunks(500, noGap))
		c := newClient(t, b, in, out, Config{Timeout: 30 * time.Second})
		checkStream(t, c, 500)
		checkStream(t, c, 500)
		if s := c.Stats(); s.Received != 1000 || s.Orphans != 0 {
			t.Fatalf("stats %+v", s)
		}
	})
}
