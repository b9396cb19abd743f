package embedded

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

func connect(url, user, password string) error {
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID("probe").SetUsername(user).SetPassword(password).
		SetProtocolVersion(4).SetConnectTimeout(5 * time.Second).SetAutoReconnect(false)
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	tok.WaitTimeout(10 * time.Second)
	if err := tok.Error(); err != nil {
		return err
	}
	c.Disconnect(100)
	return nil
}

func TestStartAndClose(t *testing.T) {
	b, err := Start(context.Background(), Config{Listen: "127.0.0.1:0", InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(b.Addr(), ":0") || !strings.HasPrefix(b.URL(), "tcp://127.0.0.1:") {
		t.Fatalf("address %q, URL %q", b.Addr(), b.URL())
	}
	if err := connect(b.URL(), "", ""); err != nil {
		t.Fatalf("anonymous connect: %v", err)
	}
	for i := 0; i < 2; i++ {
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-b.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	if err := connect(b.URL(), "", ""); err == nil {
		t.Fatal("connected to a closed broker")
	}
}

func TestCancelledContextClosesTheBroker(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	b, err := Start(ctx, Config{Listen: "127.0.0.1:0", InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-b.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("broker still running after its context was cancelled")
	}
	if _, err := Start(ctx, Config{Listen: "127.0.0.1:0", InMemory: true}); err == nil {
		t.Fatal("started with a cancelled context")
	}
}

func TestListenErrors(t *testing.T) {
	b, err := Start(context.Background(), Config{Listen: "127.0.0.1:0", InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := Start(context.Background(), Config{Listen: b.Addr(), InMemory: true}); err == nil || !strings.Contains(err.Error(), b.Addr()) {
		t.Fatalf("second broker on %s: %v", b.Addr(), err)
	}
	if _, err := Start(context.Background(), Config{Listen: "no-port", InMemory: true}); err == nil || !strings.Contains(err.Error(), "not host:port") {
		t.Fatalf("bad address: %v", err)
	}
}

func TestUsersFileAuthentication(t *testing.T) {
	users := filepath.Join(t.TempDir(), "users")
	content := "# users of the test broker\n\nalice:secret:with:colons\nbob: spaced \r\n"
	if err := os.WriteFile(users, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := Start(context.Background(), Config{Listen: "127.0.0.1:0", UsersFile: users, InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, c := range []struct {
		user, password string
		ok             bool
	}{
		{"alice", "secret:with:colons", true},
		{"bob", " spaced ", true},
		{"alice", "secret", false},
		{"alice", "", false},
		{"carol", "secret:with:colons", false},
		{"", "", false},
	} {
		err := connect(b.URL(), c.user, c.password)
		if (err == nil) != c.ok {
			t.Errorf("user %q password %q: %v, want ok=%v", c.user, c.password, err, c.ok)
		}
	}
}

func TestParseUsersErrors(t *testing.T) {
	cases := map[string]string{
		"alice\n":              "line 1: want name:password",
		"# c\n:pw\n":           "line 2: the user name is empty",
		"bob:\n":               `line 1: the password of user "bob" is empty`,
		"a:1\na:2\n":           `line 2: user "a" is listed twice`,
		"# only a comment\n\n": "no users",
	}
	for in, want := range cases {
		_, err := parseUsers(strings.NewReader(in))
		if err == nil || err.Error() != want {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
	if _, err := ReadUsersFile(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "users file") {
		t.Fatalf("missing file: %v", err)
	}
	users := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(users, []byte("x:secret-value\ny\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := ReadUsersFile(users)
	if err == nil || !strings.Contains(err.Error(), users+": line 2") || strings.Contains(err.Error(), "secret-value") {
		t.Fatalf("bad file: %v", err)
	}
}
