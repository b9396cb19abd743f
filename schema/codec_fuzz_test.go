package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// ctFuzz reaches every kind the codec handles.
type ctFuzz struct {
	S     string              `json:"s" default:"d"`
	B     bool                `json:"b" default:"true"`
	I     int64               `json:"i" default:"20"`
	I8    int8                `json:"i8"`
	U     uint32              `json:"u"`
	F     float64             `json:"f"`
	F32   float32             `json:"f32"`
	Data  Bytes               `json:"data"`
	Raw   json.RawMessage     `json:"raw"`
	Num   json.Number         `json:"num"`
	A     any                 `json:"a"`
	M     map[string]any      `json:"m"`
	MS    map[string]string   `json:"ms"`
	MT    map[string]Term     `json:"mt"`
	L     []string            `json:"l"`
	LF    []float64           `json:"lf"`
	LI    []int64             `json:"li"`
	LA    []any               `json:"la"`
	LL    [][]float64         `json:"ll"`
	T     []Triple            `json:"t"`
	PT    *Triple             `json:"pt"`
	PS    *string             `json:"ps" default:""`
	PL    *[]string           `json:"pl"`
	PM    *map[string][]int64 `json:"pm"`
	Inner ctDefaults          `json:"inner"`
	Outer *ctOuter            `json:"outer"`
	When  *time.Time          `json:"when"`
	Level ctLevel             `json:"level"`
	Point *ctPoint            `json:"point"`
}

// FuzzUnmarshal checks that no input makes Unmarshal panic or fail with
// anything but a *DecodeError, that whatever decodes encodes and decodes
// again to the same wire form, and that standard JSON decodes into any as
// encoding/json decodes it.
func FuzzUnmarshal(f *testing.F) {
	for _, s := range []string{
		`{}`,
		`{"s":"x","b":false,"i":3.0,"f":NaN,"f32":-Infinity,"data":"caf\u00e9","raw":[1,{"a":NaN}],"num":1e5}`,
		`{"t":[{"s":{"type":"t","triple":{"s":{"type":"i","iri":"x"}}}}],"pt":null,"ps":null}`,
		`{"m":{"a":[1,"b",null,true,{}]},"ms":{"k":"v"},"mt":{"k":{"type":"l","value":"v"}},"ll":[[1,2],[]]}`,
		`{"inner":{"flag":null},"outer":{"items":[{}],"by_key":{"x":{}}},"pl":[],"pm":{"a":[1,2]}}`,
		`{"unknown":{"deep":[[[{"x":"\ud83d\ude00"}]]]},"la":[NaN,Infinity,-0.0,1E-7]}`,
		`{"when":"2024-05-06T07:08:09.5+02:00","level":"high","point":[1,2],"s":"\ud800"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Standard JSON decodes into any as encoding/json decodes it with
		// UseNumber, except that input that is not UTF-8 is an error and a
		// lone surrogate is kept (encoding/json makes both U+FFFD).
		var std any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if dec.Decode(&std) == nil && std != nil && !dec.More() && onlyWhitespace(data[dec.InputOffset():]) {
			var mine any
			err := Unmarshal(data, &mine)
			switch {
			case !utf8.Valid(data):
				if err == nil {
					t.Fatalf("input %q is not UTF-8, Unmarshal accepts it", data)
				}
			case err != nil:
				t.Fatalf("encoding/json accepts %q, Unmarshal fails: %v", data, err)
			case !reflect.DeepEqual(replaceSurrogates(mine), std):
				t.Fatalf("decoded %q as %#v, encoding/json as %#v", data, mine, std)
			}
		}

		var v ctFuzz
		err := Unmarshal(data, &v)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			if de.Offset < 0 || de.Offset > len(data) {
				t.Fatalf("offset %d outside the input of %d bytes: %v", de.Offset, len(data), err)
			}
			_ = err.Error()
			return
		}
		enc1, err := Marshal(&v)
		if err != nil && !utf8.Valid(data) && invalidWTF8At(v.Data) >= 0 {
			return // a Bytes field takes any bytes but only sends UTF-8
		}
		if err != nil {
			t.Fatalf("decoded %q but cannot encode it: %v", data, err)
		}
		var v2 ctFuzz
		if err := Unmarshal(enc1, &v2); err != nil {
			t.Fatalf("cannot decode own output %s: %v", enc1, err)
		}
		enc2, err := Marshal(&v2)
		if err != nil {
			t.Fatalf("cannot encode %s again: %v", enc1, err)
		}
		if !bytes.Equal(enc1, enc2) {
			t.Fatalf("unstable round trip of %q:\nfirst  %s\nsecond %s", data, enc1, enc2)
		}
	})
}

func onlyWhitespace(b []byte) bool {
	return len(bytes.TrimLeft(b, " \t\r\n")) == 0
}

// replaceSurrogates replaces the WTF-8 form of lone surrogates in the
// strings and keys of v by U+FFFD, as encoding/json decodes them.
func replaceSurrogates(v any) any {
	fix := func(s string) string {
		if utf8.ValidString(s) {
			return s
		}
		var b strings.Builder
		for i := 0; i < len(s); {
			if surrogateAt([]byte(s), i) != 0 {
				b.WriteString("\uFFFD")
				i += 3
				continue
			}
			b.WriteByte(s[i])
			i++
		}
		return b.String()
	}
	switch x := v.(type) {
	case string:
		return fix(x)
	case []any:
		for i := range x {
			x[i] = replaceSurrogates(x[i])
		}
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fix(k)] = replaceSurrogates(e)
		}
		return out
	}
	return v
}
