package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
)

// bin holds the binaries built once for all tests.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "switchyard-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = dir
	cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator),
		"github.com/switchyard-go/switchyard/cmd/switchyard",
		"github.com/switchyard-go/switchyard/examples/echo-llm",
		"github.com/switchyard-go/switchyard/examples/prompt-template")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the binaries:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running binary whose stderr is watched for a line.
type proc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stdout bytes.Buffer
	mu     sync.Mutex
	stderr strings.Builder
	lines  chan string
	done   chan struct{}
	err    error
}

func start(t *testing.T, stdin io.Reader, name string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, lines: make(chan string, 1024), done: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(bin, name), args...)
	p.cmd.Stdin = stdin
	p.cmd.Stdout = &p.stdout
	p.cmd.Env = cleanEnv()
	errPipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			p.mu.Lock()
			p.stderr.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// cleanEnv drops the backend variables so that only explicit flags count.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "PUBSUB_BACKEND", "PULSAR_HOST", "PULSAR_API_KEY", "PULSAR_LISTENER", "MQTT_HOST", "MQTT_PORT", "MQTT_USERNAME", "MQTT_PASSWORD", "METRICS_ADDR":
			continue
		}
		env = append(env, kv)
	}
	// Several processors run at once: each serves its endpoints on a port
	// of its own instead of the default :8000.
	return append(env, "METRICS_ADDR=127.0.0.1:0")
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// waitFor waits until a stderr line contains want.
func (p *proc) waitFor(want string, within time.Duration) {
	p.t.Helper()
	deadline := time.After(within)
	for {
		select {
		case l := <-p.lines:
			if strings.Contains(l, want) {
				return
			}
		case <-p.done:
			p.t.Fatalf("%s exited (%v) before logging %q:\n%s", p.name, p.err, want, p.log())
		case <-deadline:
			p.t.Fatalf("%s did not log %q within %s:\n%s", p.name, want, within, p.log())
		}
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(within time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		p.t.Fatalf("%s did not exit within %s:\n%s", p.name, within, p.log())
	}
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	p.t.Fatalf("%s: %v", p.name, p.err)
	return -1
}

// stop sends SIGTERM and expects a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		p.t.Fatalf("%s exited %d after SIGTERM:\n%s", p.name, code, p.log())
	}
}

// tailLine is what `switchyard tail` writes per message.
type tailLine struct {
	UUID       string            `json:"uuid"`
	Properties map[string]string `json:"properties"`
	Payload    struct {
		Response    string  `json:"response"`
		Model       *string `json:"model"`
		EndOfStream bool    `json:"end_of_stream"`
	} `json:"payload"`
}

// requestReply runs echo-llm and prompt-template as processes on the backend
// given by flags, sends n prompt requests with `switchyard publish` and reads
// the replies with `switchyard tail`.
func requestReply(t *testing.T, n int, flags ...string) {
	ns := "e2e" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	q := func(name string) string { return "q1/tg/" + ns + "/" + name }
	promptQ, requestQ, responseQ := q("prompt-request"), q("text-completion-request"), q("text-completion-response")
	prepareQueues(t, flags, promptQ, requestQ, responseQ)

	llm := start(t, nil, "echo-llm", append([]string{"--input", requestQ, "--output", responseQ, "--id", "echo-" + ns, "--concurrency", "2"}, flags...)...)
	tpl := start(t, nil, "prompt-template", append([]string{"--input", promptQ, "--output", requestQ, "--id", "tpl-" + ns}, flags...)...)
	llm.waitFor("msg=ready", 60*time.Second)
	tpl.waitFor("msg=ready", 60*time.Second)

	tail := start(t, nil, "switchyard", append([]string{"tail", "--topic", responseQ, "--count", fmt.Sprint(n), "--timeout", "120s", "--initial-position", "earliest"}, flags...)...)
	tail.waitFor("tail: subscribed", 60*time.Second)

	var in strings.Builder
	want := map[string]string{}
	for i := 0; i < n; i++ {
		id := uuid.NewString()
		question := fmt.Sprintf("what is %d + %d? ünïcode ✓", i, i)
		want[id] = "Answer the question: " + question
		term, _ := json.Marshal(question)
		line, _ := json.Marshal(map[string]any{
			"properties": map[string]string{"id": id},
			"payload":    map[string]any{"id": "question", "terms": map[string]string{"question": string(term)}},
		})
		in.Write(line)
		in.WriteString("\n")
		if i == n/2 {
			in.WriteString("{this line is not json\n")
		}
	}
	pub := start(t, strings.NewReader(in.String()), "switchyard", append([]string{"publish", "--envelope", "--topic", promptQ}, flags...)...)
	if code := pub.wait(60 * time.Second); code != 1 {
		t.Fatalf("publish exited %d, want 1 for the one invalid line:\n%s", code, pub.log())
	}
	if !strings.Contains(pub.log(), fmt.Sprintf("line %d: invalid", n/2+2)) || !strings.Contains(pub.log(), fmt.Sprintf("%d confirmed", n)) {
		t.Fatalf("publish did not report the invalid line and the count:\n%s", pub.log())
	}
	if code := tail.wait(150 * time.Second); code != 0 {
		t.Fatalf("tail exited %d:\n%s", code, tail.log())
	}
	got := map[string]bool{}
	sc := bufio.NewScanner(&tail.stdout)
	for sc.Scan() {
		var l tailLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("tail wrote a line that is not JSON: %q: %v", sc.Text(), err)
		}
		id := l.Properties["id"]
		if want[id] == "" {
			t.Fatalf("reply with unknown id %q: %s", id, sc.Text())
		}
		if l.Payload.Response != want[id] || l.Payload.Model == nil || *l.Payload.Model != "echo" || !l.Payload.EndOfStream {
			t.Fatalf("reply for %s is %s, want response %q", id, sc.Text(), want[id])
		}
		got[id] = true
	}
	if len(got) != n {
		t.Fatalf("%d distinct replies, want %d", len(got), n)
	}
	llm.stop()
	tpl.stop()
	for _, p := range []*proc{llm, tpl} {
		if !strings.Contains(p.log(), "ok=") {
			t.Fatalf("%s did not log its summary on stop:\n%s", p.name, p.log())
		}
	}
}
