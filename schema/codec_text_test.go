package schema

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// ctText has a string in every place the decoder reads one.
type ctText struct {
	S    string            `json:"s"`
	L    []string          `json:"l"`
	M    map[string]string `json:"m"`
	A    any               `json:"a"`
	Raw  json.RawMessage   `json:"raw"`
	Data Bytes             `json:"data"`
	P    *string           `json:"p"`
}

// Python's json keeps an unpaired surrogate escape in its str and writes it
// back as the same escape; the Go string holds its WTF-8 form.
func TestLoneSurrogatesRoundTrip(t *testing.T) {
	in := `{"s":"\ud800 x \udfff","l":["\udbff\udbff","\ud800\ud800\udc00"],"m":{"\udc00":"\ud83d\ude00"},` +
		`"a":{"k":["\ud834"]},"raw":"\ud800","data":"a\udfffb","p":"\uDABC"}`
	var v ctText
	if err := Unmarshal([]byte(in), &v); err != nil {
		t.Fatal(err)
	}
	want := ctText{
		S:    "\xed\xa0\x80 x \xed\xbf\xbf",
		L:    []string{"\xed\xaf\xbf\xed\xaf\xbf", "\xed\xa0\x80\U00010000"},
		M:    map[string]string{"\xed\xb0\x80": "😀"},
		A:    map[string]any{"k": []any{"\xed\xa0\xb4"}},
		Raw:  json.RawMessage(`"\ud800"`),
		Data: Bytes("a\xed\xbf\xbfb"),
		P:    ctPtr("\xed\xaa\xbc"),
	}
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("got  %#v\nwant %#v", v, want)
	}
	out, err := Marshal(&v)
	if err != nil {
		t.Fatal(err)
	}
	wantOut := `{"s":"\ud800 x \udfff","l":["\udbff\udbff","\ud800𐀀"],"m":{"\udc00":"😀"},` +
		`"a":{"k":["\ud834"]},"raw":"\ud800","data":"a\udfffb","p":"\udabc"}`
	if string(out) != wantOut {
		t.Errorf("got  %s\nwant %s", out, wantOut)
	}
	// AppendString, which adapters use, writes the escape too.
	if got := string(AppendString(nil, "\xed\xa0\x80\xed\xb0\x80\xff")); got != `"\ud800\udc00\ufffd"` {
		t.Errorf("AppendString gave %s", got)
	}
}

// Raw bytes that are not UTF-8 in a JSON string are an error naming the
// field path and the offset of the bad byte, wherever the string is,
// including the WTF-8 form of a surrogate (ED A0 80), which is not UTF-8.
// Python's TrustGraph reader decodes the payload with .decode("utf-8")
// before json.loads, so it rejects such a message as a whole.
func TestInvalidUTF8IsAnError(t *testing.T) {
	cases := []struct {
		in   string
		path string
		off  int
	}{
		{`{"s":"ab` + "\xff" + `"}`, "s", 8},
		{`{"s":"` + "\xed\xa0\x80" + `"}`, "s", 6},
		{`{"s":"\n` + "\xc3" + `"}`, "s", 8},
		{`{"s":"\n` + "x\xc3(" + `"}`, "s", 9},
		{`{"l":["ok","` + "\xe2\x82" + `"]}`, "l[1]", 12},
		{`{"m":{"k":"` + "\xf0\x9f\x98" + `"}}`, `m["k"]`, 11},
		{`{"m":{"` + "\xff" + `":"v"}}`, "m", 7},
		{`{"a":{"x":["` + "\xc0\xaf" + `"]}}`, `a["x"][0]`, 12},
		{`{"raw":["` + "\xff" + `"]}`, "raw[0]", 9},
		{`{"p":"` + "\xfe" + `"}`, "p", 6},
		{`{"unknown":{"deep":"` + "\xff" + `"}}`, "unknown.deep", 20},
		{`{"` + "\xff" + `":1}`, "", 2},
	}
	for _, c := range cases {
		var v ctText
		err := Unmarshal([]byte(c.in), &v)
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Errorf("%q: %v, want a *DecodeError", c.in, err)
			continue
		}
		if de.Path != c.path || de.Offset != c.off || !strings.Contains(de.Msg, "invalid UTF-8") {
			t.Errorf("%q: got %v (path %q, offset %d), want path %q offset %d", c.in, err, de.Path, de.Offset, c.path, c.off)
		}
	}
	// Bytes fields take any bytes; they cannot be sent on as they are.
	var v ctText
	if err := Unmarshal([]byte(`{"data":"a`+"\xff\xed\xa0\x80"+`\n"}`), &v); err != nil {
		t.Fatal(err)
	}
	if string(v.Data) != "a\xff\xed\xa0\x80\n" {
		t.Errorf("data %q", v.Data)
	}
	_, err := Marshal(&v)
	var ee *EncodeError
	if !errors.As(err, &ee) || ee.Path != "data" || !strings.Contains(ee.Msg, "byte 1 is 0xff") {
		t.Errorf("Marshal: %v", err)
	}
	var b Bytes
	if err := b.UnmarshalJSON([]byte(`"` + "\xff" + `"`)); err != nil || string(b) != "\xff" {
		t.Errorf("Bytes.UnmarshalJSON gave %q, %v", b, err)
	}
}
