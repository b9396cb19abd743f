package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// Test types. Their names start with ct so they stay clear of the rest of
// the package.

type ctDefaults struct {
	Flag      bool    `json:"flag" default:"true"`
	BatchSize int64   `json:"batch_size" default:"20"`
	Coll      string  `json:"collection" default:"default"`
	Version   int32   `json:"schema_version" default:"1"`
	Ratio     float64 `json:"ratio" default:"0.5"`
	Count     uint16  `json:"count" default:"7"`
	Data      Bytes   `json:"data" default:"seed"`
	Resp      *string `json:"response" default:""`
	Plain     string  `json:"plain"`
	Opt       *int64  `json:"opt"`
}

type ctOuter struct {
	Inner ctDefaults            `json:"inner"`
	Items []ctDefaults          `json:"items"`
	ByKey map[string]ctDefaults `json:"by_key"`
	Ptr   *ctDefaults           `json:"ptr"`
	Last  string                `json:"last" default:"end"`
}

type ctOptional struct {
	S    *string          `json:"s"`
	I    *int64           `json:"i"`
	B    *bool            `json:"b"`
	F    *float64         `json:"f"`
	L    *[]string        `json:"l"`
	M    *map[string]any  `json:"m"`
	T    *Term            `json:"t"`
	Raw  *json.RawMessage `json:"raw"`
	List []string         `json:"list"`
	Map  map[string]int64 `json:"map"`
}

type ctTriples struct {
	Triples []Triple `json:"triples"`
}

type ctFloats struct {
	F   float64   `json:"f"`
	G   float64   `json:"g"`
	H   float64   `json:"h"`
	F32 float32   `json:"f32"`
	L   []float64 `json:"l"`
	A   any       `json:"a"`
}

type ctInts struct {
	I   int64  `json:"i"`
	I8  int8   `json:"i8"`
	I32 int32  `json:"i32"`
	N   int    `json:"n"`
	U   uint64 `json:"u"`
	U8  uint8  `json:"u8"`
}

type ctDoc struct {
	Name string `json:"name"`
	Data Bytes  `json:"data"`
}

type ctDocs struct {
	Docs []ctDoc `json:"docs"`
}

type ctPlain struct {
	S   string             `json:"s"`
	F   float64            `json:"f"`
	F32 float32            `json:"f32"`
	I   int64              `json:"i"`
	B   bool               `json:"b"`
	L   []string           `json:"l"`
	M   map[string]string  `json:"m"`
	MF  map[string]float64 `json:"mf"`
	A   any                `json:"a"`
}

type ctEmbedded struct {
	Metadata
	Extra string `json:"extra"`
	Skip  string `json:"-"`
	NoTag int64
	priv  int
}

type ctRaw struct {
	Raw  json.RawMessage `json:"raw"`
	Num  json.Number     `json:"num"`
	Rest map[string]any  `json:"rest"`
}

func ctPtr[T any](v T) *T { return &v }

func TestMarshalOmitsNilPointersAndWritesEverythingElse(t *testing.T) {
	empty := map[string]any{}
	cases := []struct {
		name string
		in   any
		want string
	}{
		{"zero response", &TextCompletionResponse{},
			`{"response":"","end_of_stream":false,"models":[]}`},
		{"pointers to empty values are written", &TextCompletionResponse{
			Error: &Error{}, InToken: ctPtr(int64(0)), Model: ctPtr(""), Models: []ModelInfo{},
		}, `{"error":{"type":"","message":""},"response":"","in_token":0,"model":"","end_of_stream":false,"models":[]}`},
		{"zero optional struct", &ctOptional{},
			`{"list":[],"map":{}}`},
		{"optional set to empties", &ctOptional{
			S: ctPtr(""), I: ctPtr(int64(0)), B: ctPtr(false), F: ctPtr(0.0),
			L: ctPtr([]string{}), M: &empty, T: &Term{}, Raw: ctPtr(json.RawMessage(`{}`)),
			List: nil, Map: nil,
		}, `{"s":"","i":0,"b":false,"f":0.0,"l":[],"m":{},"t":{"type":"","iri":"","id":"","value":"","datatype":"","language":""},"raw":{},"list":[],"map":{}}`},
		{"pointer to nil slice is an empty list", &ctOptional{L: new([]string), M: new(map[string]any)},
			`{"l":[],"m":{},"list":[],"map":{}}`},
		{"request with default operation", &TextCompletionRequest{Operation: "completion", Prompt: "hi"},
			`{"operation":"completion","system":"","prompt":"hi","streaming":false}`},
		{"request with schema", &TextCompletionRequest{Schema: &map[string]any{"type": "object", "n": 2.0, "i": 2, "j": json.Number("2")}, ResponseFormat: ctPtr("json")},
			`{"operation":"","system":"","prompt":"","streaming":false,"response_format":"json","schema":{"i":2,"j":2,"n":2.0,"type":"object"}}`},
		{"triple with nil graph", &Triple{S: &Term{Type: IRI, IRI: "http://x/s"}},
			`{"s":{"type":"i","iri":"http://x/s","id":"","value":"","datatype":"","language":""}}`},
		{"prompt request map sorted", &PromptRequest{ID: "p", Terms: map[string]string{"b": "2", "a": "1"}},
			`{"id":"p","terms":{"a":"1","b":"2"},"streaming":false}`},
		{"embedded fields are flattened", &ctEmbedded{Metadata: Metadata{ID: "m"}, Extra: "e", Skip: "s", NoTag: 4, priv: 1},
			`{"id":"m","root":"","collection":"","extra":"e","NoTag":4}`},
		{"nil pointer with a default is written as null", &ctDefaults{},
			`{"flag":false,"batch_size":0,"collection":"","schema_version":0,"ratio":0.0,"count":0,"data":"","response":null,"plain":""}`},
		{"nil pointer", (*Term)(nil), `null`},
		{"nil", nil, `null`},
		{"non-pointer struct", Error{Type: "t", Message: "m"}, `{"type":"t","message":"m"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Marshal(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
			app, err := AppendMarshal([]byte("prefix:"), c.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(app) != "prefix:"+c.want {
				t.Errorf("AppendMarshal gave %s", app)
			}
		})
	}
}

func TestUnmarshalMissingAndNullTakeDefaults(t *testing.T) {
	defaults := func() ctDefaults {
		return ctDefaults{Flag: true, BatchSize: 20, Coll: "default", Version: 1, Ratio: 0.5, Count: 7,
			Data: Bytes("seed"), Resp: ctPtr("")}
	}
	with := func(f func(*ctDefaults)) ctDefaults {
		d := defaults()
		f(&d)
		return d
	}
	cases := []struct {
		name string
		in   string
		want ctDefaults
	}{
		{"empty object", `{}`, defaults()},
		{"all null", `{"flag":null,"batch_size":null,"collection":null,"schema_version":null,"ratio":null,"count":null,"data":null,"plain":null,"opt":null}`, defaults()},
		{"null optional with default is nil", `{"response":null}`, with(func(d *ctDefaults) { d.Resp = nil })},
		{"zero values override defaults", `{"flag":false,"batch_size":0,"collection":"","schema_version":0,"ratio":0,"count":0,"data":"","response":""}`,
			ctDefaults{Data: Bytes{}, Resp: ctPtr("")}},
		{"values", `{"flag":true,"batch_size":5,"collection":"c","opt":0,"response":"r","plain":"p"}`,
			with(func(d *ctDefaults) {
				d.BatchSize, d.Coll, d.Opt, d.Resp, d.Plain = 5, "c", ctPtr(int64(0)), ctPtr("r"), "p"
			})},
		{"duplicate key: last wins", `{"batch_size":1,"batch_size":2}`, with(func(d *ctDefaults) { d.BatchSize = 2 })},
		{"whitespace", " \n\t{ \"batch_size\" : 3 ,\r\n \"plain\":\"x\" } \n", with(func(d *ctDefaults) { d.BatchSize, d.Plain = 3, "x" })},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Start from a dirty value: decoding must reset it.
			got := ctDefaults{Flag: false, BatchSize: 99, Plain: "old", Opt: ctPtr(int64(5)), Data: Bytes("old")}
			if err := Unmarshal([]byte(c.in), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestUnmarshalNestedDefaults(t *testing.T) {
	def := ctDefaults{Flag: true, BatchSize: 20, Coll: "default", Version: 1, Ratio: 0.5, Count: 7,
		Data: Bytes("seed"), Resp: ctPtr("")}
	cases := []struct {
		name string
		in   string
		want func() ctOuter
	}{
		{"missing nested struct", `{}`, func() ctOuter { return ctOuter{Inner: def, Last: "end"} }},
		{"null nested struct", `{"inner":null,"last":null}`, func() ctOuter { return ctOuter{Inner: def, Last: "end"} }},
		{"partial nested struct", `{"inner":{"flag":false}}`, func() ctOuter {
			o := ctOuter{Inner: def, Last: "end"}
			o.Inner.Flag = false
			return o
		}},
		{"repeated nested struct starts again from defaults", `{"inner":{"flag":false},"inner":{"batch_size":3}}`, func() ctOuter {
			o := ctOuter{Inner: def, Last: "end"}
			o.Inner.BatchSize = 3
			return o
		}},
		{"list elements, map values and pointees get defaults", `{"items":[{},null,{"plain":"x"}],"by_key":{"k":{},"n":null},"ptr":{}}`, func() ctOuter {
			x := def
			x.Plain = "x"
			d2 := def
			return ctOuter{Inner: def, Items: []ctDefaults{def, def, x}, ByKey: map[string]ctDefaults{"k": def, "n": def}, Ptr: &d2, Last: "end"}
		}},
		{"null pointer", `{"ptr":null}`, func() ctOuter { return ctOuter{Inner: def, Last: "end"} }},
		{"empty list and map", `{"items":[],"by_key":{}}`, func() ctOuter {
			return ctOuter{Inner: def, Items: []ctDefaults{}, ByKey: map[string]ctDefaults{}, Last: "end"}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := ctOuter{Last: "dirty", Ptr: &ctDefaults{}, Items: []ctDefaults{{}}}
			if err := Unmarshal([]byte(c.in), &got); err != nil {
				t.Fatal(err)
			}
			if want := c.want(); !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestUnmarshalMessageTypeDefaults(t *testing.T) {
	var req TextCompletionRequest
	if err := Unmarshal([]byte(`{}`), &req); err != nil {
		t.Fatal(err)
	}
	if req != (TextCompletionRequest{Operation: "completion"}) {
		t.Errorf("{} decoded to %+v", req)
	}
	if err := Unmarshal([]byte(`{"operation":null,"prompt":"p"}`), &req); err != nil {
		t.Fatal(err)
	}
	if req.Operation != OperationCompletion || req.Prompt != "p" {
		t.Errorf("null operation decoded to %+v", req)
	}
	var resp TextCompletionResponse
	if err := Unmarshal([]byte(`{"error":null,"response":"r","in_token":null,"out_token":7,"model":null,"end_of_stream":true,"models":null}`), &resp); err != nil {
		t.Fatal(err)
	}
	want := TextCompletionResponse{Response: "r", OutToken: ctPtr(int64(7)), EndOfStream: true}
	if !reflect.DeepEqual(resp, want) {
		t.Errorf("got %+v", resp)
	}
}

func TestDefaults(t *testing.T) {
	req := TextCompletionRequest{Prompt: "old", Streaming: true}
	if err := Defaults(&req); err != nil {
		t.Fatal(err)
	}
	if req != (TextCompletionRequest{Operation: "completion"}) {
		t.Errorf("got %+v", req)
	}
	var o ctOuter
	if err := Defaults(&o); err != nil {
		t.Fatal(err)
	}
	if !o.Inner.Flag || o.Inner.BatchSize != 20 || o.Last != "end" || o.Inner.Resp == nil || *o.Inner.Resp != "" || string(o.Inner.Data) != "seed" {
		t.Errorf("got %+v", o)
	}
	// Defaults must not share memory between values.
	var a, b ctDefaults
	if err := Defaults(&a); err != nil {
		t.Fatal(err)
	}
	if err := Defaults(&b); err != nil {
		t.Fatal(err)
	}
	a.Data[0] = 'X'
	*a.Resp = "changed"
	if string(b.Data) != "seed" || *b.Resp != "" {
		t.Errorf("defaults share memory: %+v", b)
	}
	for _, bad := range []any{nil, ctDefaults{}, (*ctDefaults)(nil)} {
		var te *TypeError
		if err := Defaults(bad); !errors.As(err, &te) {
			t.Errorf("Defaults(%#v) = %v, want a *TypeError", bad, err)
		}
	}
}

func TestUnknownKeysAreIgnored(t *testing.T) {
	in := `{"zz":{"a":[1,2,{"b":[true,false,null,"x\"y\\u0041\ud83d\ude00"]}],"c":{}},` +
		`"prompt":"p","extra":[[],[[]],{"k":NaN},-Infinity,Infinity,1.5e-3,-0,"\n"],` +
		`"system":"s","more":"}]","z":null,"y":true}`
	var req TextCompletionRequest
	if err := Unmarshal([]byte(in), &req); err != nil {
		t.Fatal(err)
	}
	if req != (TextCompletionRequest{Operation: "completion", System: "s", Prompt: "p"}) {
		t.Errorf("got %+v", req)
	}
	// Unknown keys are skipped, but must still be valid JSON.
	for _, bad := range []string{`{"zz":[1,}`, `{"zz":{"a" 1}}`, `{"zz":"\x"}`, `{"zz":tru}`, `{"zz":01}`} {
		if err := Unmarshal([]byte(bad), &req); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestNonFiniteFloats(t *testing.T) {
	in := `{"f":NaN,"g":Infinity,"h":-Infinity,"f32":-Infinity,"l":[NaN,Infinity,-Infinity,1.5],"a":{"x":[NaN,-Infinity]}}`
	var v ctFloats
	if err := Unmarshal([]byte(in), &v); err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(v.F) || !math.IsInf(v.G, 1) || !math.IsInf(v.H, -1) || !math.IsInf(float64(v.F32), -1) {
		t.Errorf("got %+v", v)
	}
	if len(v.L) != 4 || !math.IsNaN(v.L[0]) || !math.IsInf(v.L[1], 1) || !math.IsInf(v.L[2], -1) || v.L[3] != 1.5 {
		t.Errorf("list %v", v.L)
	}
	xs := v.A.(map[string]any)["x"].([]any)
	if xs[0] != json.Number("NaN") || xs[1] != json.Number("-Infinity") {
		t.Errorf("any %v", v.A)
	}
	out, err := Marshal(&v)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != in {
		t.Errorf("re-encoded as %s", out)
	}
	var raw ctRaw
	if err := Unmarshal([]byte(`{"raw":[NaN, -Infinity],"num":NaN,"rest":{"k":Infinity}}`), &raw); err != nil {
		t.Fatal(err)
	}
	if string(raw.Raw) != `[NaN, -Infinity]` || raw.Num != "NaN" || raw.Rest["k"] != json.Number("Infinity") {
		t.Errorf("got %+v", raw)
	}
	out, err = Marshal(&raw)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `{"raw":[NaN, -Infinity],"num":NaN,"rest":{"k":Infinity}}` {
		t.Errorf("re-encoded as %s", out)
	}
	for _, bad := range []string{`{"f":Nan}`, `{"f":-Inf}`, `{"f":Infinityy}`, `{"f":+1}`, `{"f":-}`, `{"f":1.}`, `{"f":.5}`, `{"f":1e}`} {
		if err := Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestIntegers(t *testing.T) {
	cases := []struct {
		in      string
		want    ctInts
		wantErr string
	}{
		{in: `{"i":3.0}`, want: ctInts{I: 3}},
		{in: `{"i":1e3,"n":-2.50e1,"u":10e-1}`, want: ctInts{I: 1000, N: -25, U: 1}},
		{in: `{"i":-0,"u":-0.0}`, want: ctInts{}},
		{in: `{"i":0.000e5}`, want: ctInts{}},
		{in: `{"i":9223372036854775807,"u":18446744073709551615}`, want: ctInts{I: math.MaxInt64, U: math.MaxUint64}},
		{in: `{"i":-9223372036854775808}`, want: ctInts{I: math.MinInt64}},
		{in: `{"i":12345678901234567890e-1}`, want: ctInts{I: 1234567890123456789}},
		{in: `{"i8":-128,"u8":255,"i32":2147483647}`, want: ctInts{I8: -128, U8: 255, I32: math.MaxInt32}},
		{in: `{"i":1.5}`, wantErr: `i: expected integer, got number 1.5 with a fraction (offset 5)`},
		{in: `{"i":1e-1}`, wantErr: `i: expected integer, got number 1e-1 with a fraction`},
		{in: `{"i":9223372036854775808}`, wantErr: `i: number 9223372036854775808 overflows int64`},
		{in: `{"i":-9223372036854775809}`, wantErr: `i: number -9223372036854775809 overflows int64`},
		{in: `{"i":1e19}`, wantErr: `i: number 1e19 overflows int64`},
		{in: `{"i":1e400}`, wantErr: `i: number 1e400 overflows a 64-bit integer`},
		{in: `{"u":18446744073709551616}`, wantErr: `u: number 18446744073709551616 overflows a 64-bit integer`},
		{in: `{"i8":128}`, wantErr: `i8: number 128 overflows int8`},
		{in: `{"u8":256}`, wantErr: `u8: number 256 overflows uint8`},
		{in: `{"u":-1}`, wantErr: `u: number -1 overflows uint64`},
		{in: `{"i":NaN}`, wantErr: `i: expected integer, got NaN`},
		{in: `{"i":-Infinity}`, wantErr: `i: expected integer, got -Infinity`},
		{in: `{"i":"1"}`, wantErr: `i: expected integer, got string`},
		{in: `{"i":true}`, wantErr: `i: expected integer, got boolean`},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			var got ctInts
			err := Unmarshal([]byte(c.in), &got)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("got %+v want %+v", got, c.want)
			}
		})
	}
}

func TestDecodeErrorsNamePathAndOffset(t *testing.T) {
	cases := []struct {
		name   string
		in     string
		target func() any
		path   string
		msg    string
		offset int
	}{
		{"nested list and struct", `{"triples":[{},{},{},{"s":{"iri":5}}]}`, func() any { return new(ctTriples) },
			"triples[3].s.iri", "expected string, got number", 33},
		{"map key", `{"id":"x","terms":{"k":1}}`, func() any { return new(PromptRequest) },
			`terms["k"]`, "expected string, got number", 23},
		{"map of structs", `{"by_key":{"a b":{"flag":"yes"}}}`, func() any { return new(ctOuter) },
			`by_key["a b"].flag`, "expected boolean, got string", 25},
		{"pointer to list of terms", `{"l":[1]}`, func() any { return new(ctOptional) },
			"l[0]", "expected string, got number", 6},
		{"object for string", `{"prompt":{}}`, func() any { return new(TextCompletionRequest) },
			"prompt", "expected string, got object", 10},
		{"array for struct", `{"error":[]}`, func() any { return new(TextCompletionResponse) },
			"error", "expected object, got array", 9},
		{"string for list", `{"models":"x"}`, func() any { return new(TextCompletionResponse) },
			"models", "expected array, got string", 10},
		{"bad token in known field", `{"response":tru}`, func() any { return new(TextCompletionResponse) },
			"response", "invalid character '}' in literal true", 15},
		{"bad token in unknown field", `{"other":[1,2,x]}`, func() any { return new(TextCompletionResponse) },
			"other[2]", "invalid character 'x' looking for a value", 14},
		{"top-level array", `[]`, func() any { return new(TextCompletionRequest) },
			"", "expected object, got array", 0},
		{"top-level null", `null`, func() any { return new(TextCompletionRequest) },
			"", "expected object, got null", 0},
		{"empty input", ``, func() any { return new(TextCompletionRequest) },
			"", "empty input", 0},
		{"only whitespace", "  \n", func() any { return new(TextCompletionRequest) },
			"", "unexpected end of input, expected object", 3},
		{"trailing garbage", `{"prompt":"p"} x`, func() any { return new(TextCompletionRequest) },
			"", "unexpected invalid character 'x' after the top-level value", 15},
		{"second value", `{}{}`, func() any { return new(TextCompletionRequest) },
			"", "unexpected object after the top-level value", 2},
		{"unterminated object", `{"prompt":"p"`, func() any { return new(TextCompletionRequest) },
			"", "unexpected end of input, expected ',' or '}'", 13},
		{"unterminated string", `{"prompt":"p`, func() any { return new(TextCompletionRequest) },
			"prompt", "unexpected end of input in string starting at offset 10", 12},
		{"missing colon", `{"prompt" "p"}`, func() any { return new(TextCompletionRequest) },
			"", "expected ':' after object key, got string", 10},
		{"trailing comma", `{"prompt":"p",}`, func() any { return new(TextCompletionRequest) },
			"", "expected object key string, got invalid character '}'", 14},
		{"bad escape", `{"prompt":"a\qb"}`, func() any { return new(TextCompletionRequest) },
			"prompt", `invalid escape "\\q" in string`, 12},
		{"bad unicode escape", `{"prompt":"\u12g4"}`, func() any { return new(TextCompletionRequest) },
			"prompt", `invalid \u escape in string`, 11},
		{"raw control character", "{\"prompt\":\"a\tb\"}", func() any { return new(TextCompletionRequest) },
			"prompt", "invalid control character 0x09 in string", 12},
		{"leading zero", `{"size":01}`, func() any { return new(Field) },
			"", "expected ',' or '}' after object member, got number", 9},
		{"unknown empty key", `{"": [x]}`, func() any { return new(TextCompletionRequest) },
			`[""][0]`, "invalid character 'x' looking for a value", 6},
		{"unknown odd keys", `{"a.b":{"c d":tru}}`, func() any { return new(TextCompletionRequest) },
			`["a.b"]["c d"]`, "invalid character '}' in literal true", 17},
		{"float list element", `{"l":[1,"x"]}`, func() any { return new(ctFloats) },
			"l[1]", "expected number, got string", 8},
		{"int list element in any list", `{"a":[1,[2,{"k":tx}]]}`, func() any { return new(ctFloats) },
			`a[1][1]["k"]`, "invalid character 'x' in literal true", 17},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Unmarshal([]byte(c.in), c.target())
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v (%T), want a *DecodeError", err, err)
			}
			if de.Path != c.path || de.Msg != c.msg || de.Offset != c.offset {
				t.Errorf("got path %q msg %q offset %d\nwant path %q msg %q offset %d", de.Path, de.Msg, de.Offset, c.path, c.msg, c.offset)
			}
		})
	}
	err := Unmarshal([]byte(`{"triples":[{},{},{},{"s":{"iri":5}}]}`), new(ctTriples))
	if got, want := err.Error(), "triples[3].s.iri: expected string, got number (offset 33)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestUnmarshalNeedsPointer(t *testing.T) {
	for _, v := range []any{nil, TextCompletionRequest{}, (*TextCompletionRequest)(nil)} {
		var te *TypeError
		if err := Unmarshal([]byte(`{}`), v); !errors.As(err, &te) {
			t.Errorf("Unmarshal into %#v: %v, want a *TypeError", v, err)
		}
	}
}

func TestBytesTravelAsUTF8Text(t *testing.T) {
	text := "naïve café ✓ 😀 <a&b> \"q\" \\ \n"
	in := ctDoc{Name: "n", Data: Bytes(text)}
	out, err := Marshal(&in)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"n","data":"naïve café ✓ 😀 <a&b> \"q\" \\ \n"}`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
	var back ctDoc
	if err := Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	if string(back.Data) != text {
		t.Errorf("round trip gave %q", back.Data)
	}
	// Python's json writes non-ASCII as \u escapes, emoji as surrogate pairs.
	py := `{"name": "n", "data": "na\u00efve caf\u00e9 \u2713 \ud83d\ude00"}`
	if err := Unmarshal([]byte(py), &back); err != nil {
		t.Fatal(err)
	}
	if string(back.Data) != "naïve café ✓ 😀" {
		t.Errorf("escaped form gave %q", back.Data)
	}
	// encoding/json sees the same form through MarshalJSON and UnmarshalJSON.
	std, err := json.Marshal(&in)
	if err != nil {
		t.Fatal(err)
	}
	var stdBack ctDoc
	if err := json.Unmarshal(std, &stdBack); err != nil {
		t.Fatal(err)
	}
	if string(stdBack.Data) != text {
		t.Errorf("encoding/json round trip gave %q (wire %s)", stdBack.Data, std)
	}

	bad := ctDocs{Docs: []ctDoc{{Data: Bytes("ok")}, {Data: Bytes("bad \xff here")}}}
	_, err = Marshal(&bad)
	var ee *EncodeError
	if !errors.As(err, &ee) {
		t.Fatalf("error %v, want an *EncodeError", err)
	}
	if ee.Path != "docs[1].data" || !strings.Contains(ee.Msg, "not valid UTF-8") {
		t.Errorf("got %q", err)
	}
	if !strings.HasPrefix(err.Error(), "encode docs[1].data: bytes are not valid UTF-8 (byte 4 is 0xff)") {
		t.Errorf("Error() = %q", err)
	}
	if _, err := json.Marshal(Bytes("\xc3")); err == nil {
		t.Error("MarshalJSON accepted invalid UTF-8")
	}
	app, err := AppendMarshal([]byte("keep"), &bad)
	if err == nil || string(app) != "keep" {
		t.Errorf("AppendMarshal on error gave %q, %v", app, err)
	}
}

func TestBadDefaultTagIsAnError(t *testing.T) {
	type badBool struct {
		B bool `json:"b" default:"yes"`
	}
	type badInt struct {
		N int64 `json:"n" default:"twenty"`
	}
	type badRange struct {
		N int8 `json:"n" default:"300"`
	}
	type badKind struct {
		L []string `json:"l" default:"a"`
	}
	type badNested struct {
		Inner badInt `json:"inner"`
	}
	type badEmpty struct {
		F float64 `json:"f" default:""`
	}
	cases := []struct {
		v     any
		typ   string
		field string
		msg   string
	}{
		{new(badBool), "schema.badBool", "B", `bad default tag "yes": want true or false for bool`},
		{new(badInt), "schema.badInt", "N", `bad default tag "twenty": not a valid int64 (invalid syntax)`},
		{new(badRange), "schema.badRange", "N", `bad default tag "300": not a valid int8 (value out of range)`},
		{new(badKind), "schema.badKind", "L", `bad default tag "a": defaults are not supported on []string`},
		{new(badNested), "schema.badInt", "N", `bad default tag "twenty"`},
		{new(badEmpty), "schema.badEmpty", "F", `bad default tag "": not a valid float64`},
	}
	for _, c := range cases {
		t.Run(c.typ, func(t *testing.T) {
			check := func(what string, err error) {
				t.Helper()
				var te *TypeError
				if !errors.As(err, &te) {
					t.Fatalf("%s: %v, want a *TypeError", what, err)
				}
				if te.Type.String() != c.typ || te.Field != c.field || !strings.HasPrefix(te.Msg, c.msg) {
					t.Errorf("%s: got %q", what, err)
				}
				if !strings.Contains(err.Error(), c.typ) || !strings.Contains(err.Error(), "field "+c.field) {
					t.Errorf("%s: message %q does not name the type and field", what, err)
				}
			}
			_, err := Marshal(c.v)
			check("Marshal", err)
			check("Unmarshal", Unmarshal([]byte(`{}`), c.v))
			check("Defaults", Defaults(c.v))
			check("CheckType", CheckType(reflect.TypeOf(c.v)))
		})
	}
}

func TestUnsupportedTypes(t *testing.T) {
	type withChan struct {
		C chan int `json:"c"`
	}
	type withIntKey struct {
		M map[int]string `json:"m"`
	}
	// Built at run time: go vet rejects a literal struct with a repeated tag.
	dupName := reflect.StructOf([]reflect.StructField{
		{Name: "A", Type: reflect.TypeFor[string](), Tag: `json:"x"`},
		{Name: "B", Type: reflect.TypeFor[string](), Tag: `json:"x"`},
	})
	type withStringOpt struct {
		N int64 `json:"n,string"`
	}
	type embeddedPtr struct {
		*Metadata
	}
	for _, v := range []any{new(withChan), new(withIntKey), reflect.New(dupName).Interface(), new(withStringOpt), new(embeddedPtr), new(func())} {
		var te *TypeError
		if err := CheckType(reflect.TypeOf(v)); !errors.As(err, &te) {
			t.Errorf("%T: %v, want a *TypeError", v, err)
		} else {
			t.Logf("%T: %v", v, err)
		}
	}
	// A dynamic value of an unsupported type inside an any field.
	_, err := Marshal(&ctFloats{A: map[string]any{"k": []any{make(chan int)}}})
	var ee *EncodeError
	if !errors.As(err, &ee) || ee.Path != `a["k"][0]` {
		t.Errorf("got %v", err)
	}
	// A shallower field wins over an embedded one of the same name.
	type shadow struct {
		Metadata
		ID int64 `json:"id"`
	}
	out, err := Marshal(&shadow{Metadata: Metadata{ID: "inner"}, ID: 3})
	if err != nil || string(out) != `{"root":"","collection":"","id":3}` {
		t.Errorf("got %s, %v", out, err)
	}
}

func TestRawMessageAndAny(t *testing.T) {
	in := `{"raw":{"a" : [1, "x"]},"num":-1.5e3,"rest":{"s":"x","n":1,"b":true,"z":null,"l":[],"o":{}}}`
	var v ctRaw
	if err := Unmarshal([]byte(in), &v); err != nil {
		t.Fatal(err)
	}
	if string(v.Raw) != `{"a" : [1, "x"]}` || v.Num != "-1.5e3" {
		t.Errorf("got %+v", v)
	}
	wantRest := map[string]any{"s": "x", "n": json.Number("1"), "b": true, "z": nil, "l": []any{}, "o": map[string]any{}}
	if !reflect.DeepEqual(v.Rest, wantRest) {
		t.Errorf("rest %#v", v.Rest)
	}
	out, err := Marshal(&v)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"raw":{"a" : [1, "x"]},"num":-1.5e3,"rest":{"b":true,"l":[],"n":1,"o":{},"s":"x","z":null}}`; string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
	// Empty RawMessage and Number.
	out, err = Marshal(&ctRaw{})
	if err != nil || string(out) != `{"raw":null,"num":0,"rest":{}}` {
		t.Errorf("got %s, %v", out, err)
	}
	for _, bad := range []ctRaw{{Raw: json.RawMessage(`{"a":}`)}, {Raw: json.RawMessage(`1 2`)}, {Num: "1x"}} {
		if _, err := Marshal(&bad); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
	// Typed values inside any go through their own plans.
	mixed := &ctFloats{A: map[string]any{"t": &Term{Type: LITERAL, Value: "v"}, "e": Error{Type: "x"},
		"m": map[string]string{"k": "v"}, "b": Bytes("é"), "i": int64(-3), "u": uint8(4), "nil": (*Term)(nil)}}
	out, err = Marshal(mixed)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"f":0.0,"g":0.0,"h":0.0,"f32":0.0,"l":[],"a":{"b":"é","e":{"type":"x","message":""},"i":-3,"m":{"k":"v"},"nil":null,` +
		`"t":{"type":"l","iri":"","id":"","value":"v","datatype":"","language":""},"u":4}}`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
}

// TestMatchesEncodingJSON compares the output for plain values with
// encoding/json's (without HTML escaping), to catch escaping and number
// formatting mistakes.
func TestMatchesEncodingJSON(t *testing.T) {
	strs := []string{"", "plain", "quote\" backslash\\ slash/", "<html> & </html>",
		"\x00\x01\x1f\x7f\b\f\n\r\t", "line\u2028sep\u2029", "naïve café ✓ 😀 日本語",
		"bad \xff\xfe utf8 \xc3", "long " + strings.Repeat("abcdefgh", 40) + "\u00e9\n"}
	floats := []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 1.0 / 3, 123.456, 1e-6, 1e-7, 9.99e-7, 1e20, 1e21, 1.5e300,
		math.MaxFloat64, math.SmallestNonzeroFloat64, 12345678.125, -2.5e-10, 100}
	for i, s := range strs {
		f := floats[i%len(floats)]
		v := ctPlain{S: s, F: f, F32: float32(f), I: int64(i) * -7919, B: i%2 == 0, L: []string{s, strs[(i+1)%len(strs)]},
			M: map[string]string{s: "v", "k" + s: s}, MF: map[string]float64{"x": f},
			A: map[string]any{"s": s, "l": []any{f, true, nil, s}}}
		got, err := Marshal(&v)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(&v); err != nil {
			t.Fatal(err)
		}
		want := strings.TrimSuffix(buf.String(), "\n")
		if !sameNumbersJSON(t, got, []byte(want)) {
			t.Errorf("case %d:\ngot  %s\nwant %s", i, got, want)
		}
	}
	for _, f := range floats {
		v := ctPlain{F: f, L: []string{}, M: map[string]string{}, MF: map[string]float64{}}
		if !math.IsInf(float64(float32(f)), 0) {
			v.F32 = float32(f)
		}
		got, _ := Marshal(&v)
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(&v)
		if want := strings.TrimSuffix(buf.String(), "\n"); !sameNumbersJSON(t, got, []byte(want)) {
			t.Errorf("float %v:\ngot  %s\nwant %s", f, got, want)
		}
	}
}

// sameNumbersJSON reports whether a and b hold the same JSON: the same text once
// every number is replaced by its float64 value, so 1.0 and 1 are equal but
// -0.0 and 0 are not.
func sameNumbersJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	norm := func(data []byte) string {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("not JSON: %s: %v", data, err)
		}
		var walk func(any) any
		walk = func(v any) any {
			switch x := v.(type) {
			case json.Number:
				f, err := x.Float64()
				if err != nil {
					t.Fatalf("number %s: %v", x, err)
				}
				return fmt.Sprintf("num(%v,%v)", f, math.Signbit(f))
			case []any:
				for i := range x {
					x[i] = walk(x[i])
				}
			case map[string]any:
				for k := range x {
					x[k] = walk(x[k])
				}
			}
			return v
		}
		out, _ := json.Marshal(walk(v))
		return string(out)
	}
	return norm(a) == norm(b)
}

// Go floats are written as Python writes floats, in float fields and inside
// any: a whole number keeps ".0", so Python reads a float (and the sign of
// zero) back. Numbers decoded into any are json.Number and keep their text.
func TestTypedFloatsKeepTheirFraction(t *testing.T) {
	type f struct {
		F  float64            `json:"f"`
		L  []float64          `json:"l"`
		A  any                `json:"a"`
		MF map[string]float64 `json:"mf"`
	}
	cases := []struct {
		in   f
		want string
	}{
		{f{F: 1, L: []float64{2, -0.5}, A: 3.0, MF: map[string]float64{"k": 4}}, `{"f":1.0,"l":[2.0,-0.5],"a":3.0,"mf":{"k":4.0}}`},
		{f{F: math.Copysign(0, -1)}, `{"f":-0.0,"l":[],"a":null,"mf":{}}`},
		{f{F: 1e21, L: []float64{1e20, 0.1}}, `{"f":1e+21,"l":[100000000000000000000.0,0.1],"a":null,"mf":{}}`},
		{f{F: math.NaN(), L: []float64{math.Inf(1), math.Inf(-1)}}, `{"f":NaN,"l":[Infinity,-Infinity],"a":null,"mf":{}}`},
	}
	for _, c := range cases {
		got, err := Marshal(&c.in)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
	}
}

// TestDecodeMatchesEncodingJSON decodes standard JSON (valid UTF-8, no lone
// surrogates) into any and compares with encoding/json's result with
// UseNumber.
func TestDecodeMatchesEncodingJSON(t *testing.T) {
	docs := []string{
		`{"a":"\u00e9\ud83d\ude00\n\/\"\\\b\f\r\t","b":[1,-2.5e-3,0,1E+2,true,false,null],"c":{"d":{}}}`,
		`{"ctl":"\u0000"}`,
		`{"dup":1,"dup":2,"": "empty key", "k\u0041":"escaped key"}`,
		`{"big":12345678901234567890,"tiny":5e-324,"neg0":-0}`,
		"{\"raw\":\"caf\xc3\xa9 \xe2\x9c\x93\"}",
	}
	for _, doc := range docs {
		var want, got map[string]any
		dec := json.NewDecoder(strings.NewReader(doc))
		dec.UseNumber()
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		if err := Unmarshal([]byte(doc), &got); err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\ngot  %#v\nwant %#v", doc, got, want)
		}
	}
}

func TestPointerCycleIsAnError(t *testing.T) {
	tr := &Triple{}
	term := &Term{Type: TRIPLE, Triple: tr}
	tr.S = term
	_, err := Marshal(tr)
	var ee *EncodeError
	if !errors.As(err, &ee) || !strings.Contains(ee.Msg, "nested deeper") {
		t.Errorf("got %v", err)
	}
	m := map[string]any{}
	m["self"] = m
	if _, err := Marshal(&ctFloats{A: m}); err == nil {
		t.Error("cyclic map encoded")
	}
}

func TestDeepNestingIsAnError(t *testing.T) {
	deep := `{"a":` + strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1) + `}`
	var v ctFloats
	if err := Unmarshal([]byte(deep), &v); err == nil || !strings.Contains(err.Error(), "nesting deeper") {
		t.Errorf("any: %v", err)
	}
	var req TextCompletionRequest
	if err := Unmarshal([]byte(`{"x":`+deep+`}`), &req); err == nil || !strings.Contains(err.Error(), "nesting deeper") {
		t.Errorf("skip: %v", err)
	}
	// A deep error path keeps both ends and stays short.
	err := Unmarshal([]byte(`{"a":`+strings.Repeat("[", 5000)+"x"), &v)
	var de *DecodeError
	if !errors.As(err, &de) || !strings.HasPrefix(de.Path, "a[0][0]") || !strings.Contains(de.Path, "]...[") || len(de.Path) > 300 {
		t.Errorf("deep path: %v", err)
	}
	ok := `{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`
	if err := Unmarshal([]byte(ok), &v); err != nil {
		t.Error(err)
	}
}

func TestRoundTripMessageTypes(t *testing.T) {
	g := "http://g"
	msgs := []any{
		&TextCompletionRequest{Operation: OperationListModels, System: "sys", Prompt: "p\u2028", Streaming: true,
			ResponseFormat: ctPtr("json"), Schema: &map[string]any{"a": []any{json.Number("1.0"), "x"}}},
		&TextCompletionResponse{Error: &Error{Type: "llm-error", Message: "m"}, Response: "r", InToken: ctPtr(int64(3)),
			OutToken: ctPtr(int64(-1)), Model: ctPtr("m"), EndOfStream: true,
			Models: []ModelInfo{{ID: "x", InputPrice: ctPtr(math.Inf(1)), InputModalities: []string{"text"}, Created: ctPtr(int64(1700000000)),
				OutputModalities: []string{}, SupportedFeatures: []string{}}}},
		&ctTriples{Triples: []Triple{{S: &Term{Type: IRI, IRI: "s"}, P: &Term{Type: IRI, IRI: "p"},
			O: &Term{Type: TRIPLE, Triple: &Triple{S: &Term{Type: BLANK, ID: "b"}, O: &Term{Type: LITERAL, Value: "v", Language: "en"}}}, G: &g}}},
		&RowSchema{Name: "r", Fields: []Field{{Name: "f", Type: "int", Size: 4, Primary: true, EnumValues: []string{"a"}}}},
		&PromptResponse{Text: "t", EndOfStream: true, InToken: ctPtr(int64(0))},
		&ImageToTextRequest{Image: "aGk=", MimeType: "image/png"},
		&ImageToTextResponse{Description: "d"},
		&ToolRequest{Name: "n", Parameters: `{"a":1}`},
		&ToolResponse{Object: "{}"},
		&Metadata{ID: "i", Root: "r", Collection: "c"},
	}
	for _, m := range msgs {
		out, err := Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		back := reflect.New(reflect.TypeOf(m).Elem()).Interface()
		if err := Unmarshal(out, back); err != nil {
			t.Fatalf("%T: %v\n%s", m, err, out)
		}
		if !reflect.DeepEqual(back, m) {
			t.Errorf("%T round trip:\ngot  %+v\nwant %+v\nwire %s", m, back, m, out)
		}
	}
}

func TestConcurrentFirstUse(t *testing.T) {
	type fresh struct {
		A []map[string]*ctOuter `json:"a"`
		B ctDefaults            `json:"b"`
	}
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var v fresh
			if err := Unmarshal([]byte(`{"a":[{"k":{"items":[{}]}}]}`), &v); err != nil {
				t.Error(err)
				return
			}
			if v.A[0]["k"].Items[0].BatchSize != 20 || v.B.BatchSize != 20 {
				t.Errorf("got %+v", v)
			}
			if _, err := Marshal(&v); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

func TestAllocations(t *testing.T) {
	req := benchRequest()
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() {
		if _, err := AppendMarshal(buf[:0], req); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("AppendMarshal allocates %v times, want 0", n)
	}
	data, err := Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var back TextCompletionRequest
	if ctRace {
		t.Skip("the race detector makes sync.Pool drop items")
	}
	// One allocation per decoded string (system, prompt); the default
	// operation name is not copied.
	if n := testing.AllocsPerRun(100, func() {
		if err := Unmarshal(data, &back); err != nil {
			t.Fatal(err)
		}
	}); n > 2 {
		t.Errorf("Unmarshal allocates %v times, want at most 2", n)
	}
}
