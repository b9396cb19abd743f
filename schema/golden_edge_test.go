package schema

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// These tests put the codec's edge cases next to Python's json module as
// TrustGraph uses it (scripts/jsonpeer.py): numbers inside any, lone
// surrogates, invalid UTF-8 and time.Time.

// peer runs scripts/jsonpeer.py with the request req and decodes its answer
// into out.
func peer(t *testing.T, req map[string]any, out any) {
	t.Helper()
	py := tgPython(t)
	in, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, filepath.Join("..", "scripts", "jsonpeer.py"))
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	res, err := cmd.Output()
	if err != nil {
		t.Fatalf("jsonpeer.py %s: %v\n%s", in, err, stderr.String())
	}
	if err := json.Unmarshal(res, out); err != nil {
		t.Fatalf("jsonpeer.py answer %s: %v", res, err)
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

type peerLoad struct {
	OK    bool            `json:"ok"`
	Error string          `json:"error"`
	Value json.RawMessage `json:"value"`
	Dumps string          `json:"dumps"`
}

type peerSame struct {
	Same bool     `json:"same"`
	A    peerLoad `json:"a"`
	B    peerLoad `json:"b"`
}

// pythonSame asserts that Python reads a and b into equal values of the
// same types.
func pythonSame(t *testing.T, what string, a, b []byte) {
	t.Helper()
	var r peerSame
	peer(t, map[string]any{"op": "same", "a": b64(a), "b": b64(b)}, &r)
	if !r.Same {
		t.Errorf("%s: Python reads different values:\n  %s\n  -> %s (%s)\n  %s\n  -> %s (%s)",
			what, a, r.A.Value, r.A.Error, b, r.B.Value, r.B.Error)
	}
}

// goRoundTrip decodes wire into a new T and encodes it again.
func goRoundTrip[T any](t *testing.T, wire []byte) []byte {
	t.Helper()
	v := new(T)
	if err := Unmarshal(wire, v); err != nil {
		t.Fatalf("Unmarshal %s: %v", wire, err)
	}
	out, err := Marshal(v)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	return out
}

// Numbers in an any field keep their text, so Python reads back an int
// where it wrote an int and a float where it wrote a float, and big
// integers exactly (2**53+1 and 2**70 do not fit a float64).
func TestPythonNumbersInAny(t *testing.T) {
	in := []byte(`{"payload": {"int": 1, "float": 1.0, "exp": 1e5, "big53": 9007199254740993, ` +
		`"big70": 1180591620717411303424, "neg70": -1180591620717411303424, "negzero": -0.0, ` +
		`"list": [1, 1.0, 2.5, -3, 0], "nested": {"x": [123456789012345678901234567890]}, ` +
		`"nan": NaN, "inf": -Infinity, "tiny": 5e-324}}`)
	out := goRoundTrip[PassthroughRequest](t, in)
	for _, tok := range []string{`"int":1,`, `"float":1.0,`, `"exp":1e5,`, `"big53":9007199254740993,`,
		`"big70":1180591620717411303424,`, `"neg70":-1180591620717411303424,`, `"negzero":-0.0,`,
		`"list":[1,1.0,2.5,-3,0]`, `[123456789012345678901234567890]`, `"nan":NaN`, `"inf":-Infinity`, `"tiny":5e-324`} {
		if !strings.Contains(string(out), tok) {
			t.Errorf("Go's output lacks %s: %s", tok, out)
		}
	}
	pythonSame(t, "Go's round trip", in, out)

	// What Python itself writes for the same value reads back the same
	// through Go.
	var r peerLoad
	peer(t, map[string]any{"op": "load", "payload": b64(in)}, &r)
	if !r.OK {
		t.Fatal(r.Error)
	}
	pyOut := []byte(r.Dumps)
	pythonSame(t, "Python's text through Go", pyOut, goRoundTrip[PassthroughRequest](t, pyOut))

	// Go numbers put into an any: ints stay ints, floats are written as
	// Python writes floats.
	req := &PassthroughRequest{Payload: map[string]any{"i": 3, "i64": int64(1) << 62, "f": 3.0, "f2": 2.5,
		"f32": float32(1), "num": json.Number("7")}}
	goOut, err := Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte(`{"payload": {"i": 3, "i64": 4611686018427387904, "f": 3.0, "f2": 2.5, "f32": 1.0, "num": 7}}`)
	pythonSame(t, "Go values", want, goOut)
}

// Python's json keeps an unpaired surrogate escape in a str and writes it
// back as the same escape; Go holds it as WTF-8 and does the same.
func TestPythonLoneSurrogates(t *testing.T) {
	in := []byte(`{"payload": {"s": "a\ud800b", "k\udc00": ["\udbff\udfff", "\ud83d\ude00", "\ud800\ud800", "\uDFFF"]}}`)
	out := goRoundTrip[PassthroughRequest](t, in)
	// \udbff\udfff is a pair: U+10FFFF.
	if want := `{"payload":{"k\udc00":["` + "\U0010FFFF" + `","😀","\ud800\ud800","\udfff"],"s":"a\ud800b"}}`; string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
	pythonSame(t, "any field", in, out)

	// A str field, through TrustGraph's own reader in the golden vectors'
	// style: Python's text for the same value reads back the same.
	req := []byte(`{"operation": "completion", "system": "\udfff", "prompt": "x\ud800y\ud83d", "streaming": false}`)
	out = goRoundTrip[TextCompletionRequest](t, req)
	if !strings.Contains(string(out), `"prompt":"x\ud800y\ud83d"`) || !strings.Contains(string(out), `"system":"\udfff"`) {
		t.Errorf("got %s", out)
	}
	pythonSame(t, "str fields", req, out)
}

// Raw bytes that are not UTF-8 are a decode error in Go, with the field
// path and offset. Python's TrustGraph reader does payload.decode("utf-8")
// before json.loads, which raises UnicodeDecodeError for the same payloads,
// so the message fails there too. (json.loads given the raw bytes on its
// own decodes with "surrogatepass" and would turn ED A0 80 into '\ud800';
// TrustGraph never calls it that way.)
func TestPythonRejectsInvalidUTF8Too(t *testing.T) {
	cases := []struct {
		name       string
		bad        string
		loadsBytes bool // whether json.loads(bytes) alone accepts it
	}{
		{"ff", "\xff", false},
		{"surrogate-ed-a0-80", "\xed\xa0\x80", true},
		{"surrogate-ed-bf-bf", "\xed\xbf\xbf", true},
		{"truncated", "\xe2\x82", false},
		{"bad-continuation", "\xc3(", false},
		{"overlong", "\xc0\xaf", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wire := []byte(`{"operation": "completion", "prompt": "ok ` + c.bad + ` ok"}`)
			err := Unmarshal(wire, new(TextCompletionRequest))
			var de *DecodeError
			if !errors.As(err, &de) || de.Path != "prompt" || de.Offset != 42 || !strings.Contains(de.Msg, "invalid UTF-8") {
				t.Errorf("Go: %v", err)
			}
			var r struct {
				peerLoad
				LoadsBytes peerLoad `json:"loads_bytes"`
			}
			peer(t, map[string]any{"op": "load", "payload": b64(wire)}, &r)
			if r.OK || !strings.HasPrefix(r.Error, "UnicodeDecodeError") {
				t.Errorf("Python's TrustGraph reader: ok=%v %s", r.OK, r.Error)
			}
			if r.LoadsBytes.OK != c.loadsBytes {
				t.Errorf("json.loads(bytes): ok=%v %s, want ok=%v", r.LoadsBytes.OK, r.LoadsBytes.Error, c.loadsBytes)
			}
		})
	}
}

type ctWhen struct {
	When  time.Time  `json:"when"`
	Maybe *time.Time `json:"maybe"`
}

// time.Time travels as its RFC 3339 string, which Python reads as a str
// and datetime.fromisoformat parses to the same instant (to the
// microsecond, Python's resolution); Python's isoformat() of an aware
// datetime decodes into the same time.Time.
func TestPythonTimeAsString(t *testing.T) {
	when := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("", -(5*3600+30*60)))
	out, err := Marshal(&ctWhen{When: when, Maybe: ctPtr(when.UTC())})
	if err != nil {
		t.Fatal(err)
	}
	var r peerLoad
	peer(t, map[string]any{"op": "load", "payload": b64(out)}, &r)
	if !r.OK {
		t.Fatal(r.Error)
	}
	var doc map[string]string
	if err := json.Unmarshal([]byte(r.Dumps), &doc); err != nil {
		t.Fatalf("Python did not read strings: %s (%v)", r.Dumps, err)
	}
	for key, off := range map[string]int{"when": -(5*3600 + 30*60), "maybe": 0} {
		var iso struct {
			OK         bool   `json:"ok"`
			Error      string `json:"error"`
			EpochUS    int64  `json:"epoch_us"`
			UTCOffsetS *int   `json:"utcoffset_s"`
		}
		peer(t, map[string]any{"op": "fromisoformat", "text": doc[key]}, &iso)
		if !iso.OK || iso.EpochUS != when.UnixMicro() || iso.UTCOffsetS == nil || *iso.UTCOffsetS != off {
			t.Errorf("%s %q: Python reads %+v, want %d us at offset %d", key, doc[key], iso, when.UnixMicro(), off)
		}
	}

	var back struct {
		Text    string `json:"text"`
		Payload string `json:"payload"`
	}
	peer(t, map[string]any{"op": "isoformat", "epoch_us": when.UnixMicro(), "utcoffset_s": 3600}, &back)
	payload, err := base64.StdEncoding.DecodeString(back.Payload)
	if err != nil {
		t.Fatal(err)
	}
	var got ctWhen
	if err := Unmarshal(payload, &got); err != nil {
		t.Fatalf("Python's %s: %v", payload, err)
	}
	if !got.When.Equal(when.Truncate(time.Microsecond)) {
		t.Errorf("Python's %s decoded as %v, want %v", back.Text, got.When, when.Truncate(time.Microsecond))
	}
	if _, off := got.When.Zone(); off != 3600 {
		t.Errorf("offset %d", off)
	}
}
