package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// ctLevel travels as text through MarshalText and UnmarshalText.
type ctLevel int

func (l ctLevel) MarshalText() ([]byte, error) {
	switch l {
	case 0:
		return []byte("low"), nil
	case 1:
		return []byte("high"), nil
	}
	return nil, errLevel
}

func (l *ctLevel) UnmarshalText(b []byte) error {
	switch string(b) {
	case "low":
		*l = 0
	case "high":
		*l = 1
	default:
		return errLevel
	}
	return nil
}

var errLevel = errors.New("no such level")

// ctPoint has JSON methods on its pointer type and a body that differs
// from its fields.
type ctPoint struct {
	X, Y int
}

func (p *ctPoint) MarshalJSON() ([]byte, error) {
	if p.X < 0 {
		return nil, errNegative
	}
	if p.Y < 0 {
		return []byte(`{"broken":`), nil
	}
	return []byte(fmt.Sprintf(" [%d, %d] ", p.X, p.Y)), nil
}

func (p *ctPoint) UnmarshalJSON(b []byte) error {
	var xy []int
	if err := json.Unmarshal(b, &xy); err != nil || len(xy) != 2 {
		return errNotPoint
	}
	p.X, p.Y = xy[0], xy[1]
	return nil
}

var (
	errNegative = errors.New("negative x")
	errNotPoint = errors.New("not a point")
)

type ctMethods struct {
	When   time.Time            `json:"when"`
	Maybe  *time.Time           `json:"maybe"`
	Times  []time.Time          `json:"times"`
	ByName map[string]time.Time `json:"by_name"`
	Level  ctLevel              `json:"level"`
	Point  ctPoint              `json:"point"`
	PP     *ctPoint             `json:"pp"`
	Any    any                  `json:"any"`
	Data   Bytes                `json:"data"`
	Raw    json.RawMessage      `json:"raw"`
}

func TestJSONAndTextMethods(t *testing.T) {
	when := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	zone := time.FixedZone("", 2*3600)
	v := ctMethods{
		When: when, Maybe: ctPtr(when.In(zone)), Times: []time.Time{when.Add(time.Hour)},
		ByName: map[string]time.Time{"a": when}, Level: 1, Point: ctPoint{1, 2}, PP: &ctPoint{3, 4},
		Any: map[string]any{"t": when, "l": ctLevel(0)}, Data: Bytes("d"), Raw: json.RawMessage(`[1]`),
	}
	out, err := Marshal(&v)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"when":"2024-05-06T07:08:09.123456789Z","maybe":"2024-05-06T09:08:09.123456789+02:00",` +
		`"times":["2024-05-06T08:08:09.123456789Z"],"by_name":{"a":"2024-05-06T07:08:09.123456789Z"},` +
		`"level":"high","point":[1, 2],"pp":[3, 4],` +
		`"any":{"l":"low","t":"2024-05-06T07:08:09.123456789Z"},"data":"d","raw":[1]}`
	if string(out) != want {
		t.Fatalf("got  %s\nwant %s", out, want)
	}
	var back ctMethods
	if err := Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	if !back.When.Equal(when) || !back.Maybe.Equal(when) || !back.Times[0].Equal(when.Add(time.Hour)) ||
		!back.ByName["a"].Equal(when) || back.Level != 1 || back.Point != (ctPoint{1, 2}) || *back.PP != (ctPoint{3, 4}) {
		t.Errorf("got %+v", back)
	}
	if _, off := back.Maybe.Zone(); off != 2*3600 {
		t.Errorf("zone offset %d", off)
	}

	// null and missing keys give the zero value; a nil pointer is left out.
	var empty ctMethods
	if err := Unmarshal([]byte(`{"when":null,"level":null,"pp":null}`), &empty); err != nil {
		t.Fatal(err)
	}
	if !empty.When.IsZero() || empty.PP != nil || empty.Level != 0 {
		t.Errorf("got %+v", empty)
	}
	out, err = Marshal(&ctMethods{})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"when":"0001-01-01T00:00:00Z","times":[],"by_name":{},"level":"low","point":[0, 0],"any":null,"data":"","raw":null}`; string(out) != want {
		t.Errorf("zero value: got %s\nwant %s", out, want)
	}

	// Unmarshal straight into a time.Time.
	var tm time.Time
	if err := Unmarshal([]byte(` "2001-02-03T04:05:06Z" `), &tm); err != nil || !tm.Equal(time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)) {
		t.Errorf("time: %v, %v", tm, err)
	}
}

func TestMethodErrors(t *testing.T) {
	// A method's error is wrapped, with the path.
	_, err := Marshal(&ctMethods{Times: []time.Time{{}}, PP: &ctPoint{X: -1}})
	var ee *EncodeError
	if !errors.As(err, &ee) || ee.Path != "pp" || !errors.Is(err, errNegative) {
		t.Errorf("MarshalJSON error: %v", err)
	}
	_, err = Marshal(&ctMethods{Level: 7})
	if !errors.As(err, &ee) || ee.Path != "level" || !errors.Is(err, errLevel) {
		t.Errorf("MarshalText error: %v", err)
	}
	_, err = Marshal(&ctMethods{Any: []any{ctPoint{Y: -1}}})
	if !errors.As(err, &ee) || ee.Path != "any[0]" || !strings.Contains(ee.Msg, "returned invalid JSON") {
		t.Errorf("invalid JSON from MarshalJSON: %v", err)
	}
	// time.Time refuses years past 9999.
	if _, err := Marshal(&ctMethods{When: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}); !errors.As(err, &ee) || ee.Path != "when" {
		t.Errorf("year 10000: %v", err)
	}

	cases := []struct {
		in, path, msg string
		off           int
		is            error
	}{
		{`{"times":["x","2001-02-03"]}`, "times[0]", "UnmarshalJSON of time.Time", 10, nil},
		{`{"level":"medium"}`, "level", "UnmarshalText of schema.ctLevel", 9, errLevel},
		{`{"level":1}`, "level", "expected string, got number", 9, nil},
		{`{"pp":{"x":1}}`, "pp", "UnmarshalJSON of schema.ctPoint", 6, errNotPoint},
		{`{"point":[1,}`, "point[1]", "invalid character", 12, nil},
		{`{"when":"` + "\xff" + `"}`, "when", "invalid UTF-8", 9, nil},
	}
	for _, c := range cases {
		var v ctMethods
		err := Unmarshal([]byte(c.in), &v)
		var de *DecodeError
		if !errors.As(err, &de) || de.Path != c.path || de.Offset != c.off || !strings.Contains(de.Msg, c.msg) ||
			(c.is != nil && !errors.Is(err, c.is)) {
			t.Errorf("%s: got %v (path %q, offset %v)", c.in, err, pathOf(err), offsetOf(err))
		}
	}
}

func pathOf(err error) string {
	var de *DecodeError
	if errors.As(err, &de) {
		return de.Path
	}
	return ""
}

func offsetOf(err error) int {
	var de *DecodeError
	if errors.As(err, &de) {
		return de.Offset
	}
	return -1
}

// ctEncOnly can be written (MarshalJSON) but its kind, a function, cannot
// be read.
type ctEncOnly func()

func (ctEncOnly) MarshalJSON() ([]byte, error) { return []byte(`"f"`), nil }

// ctDecOnly can be read (UnmarshalText) but its kind cannot be written.
type ctDecOnly chan int

func (*ctDecOnly) UnmarshalText([]byte) error { return nil }

// ctEncArray has MarshalText only; its kind (an array) is not supported.
type ctEncArray [2]byte

func (a ctEncArray) MarshalText() ([]byte, error) { return []byte{a[0], a[1]}, nil }

// ctEncStruct has MarshalJSON only; decoding uses its fields.
type ctEncStruct struct {
	N int64 `json:"n" default:"4"`
}

func (s ctEncStruct) MarshalJSON() ([]byte, error) { return []byte(fmt.Sprint(s.N * 10)), nil }

func TestCheckTypeWithMethods(t *testing.T) {
	type inner struct {
		Items []map[string]ctEncOnly `json:"items"`
	}
	type oneWayEnc struct {
		Inner inner `json:"inner"`
	}
	type oneWayDec struct {
		D *ctDecOnly `json:"d"`
	}
	type withDefault struct {
		When time.Time `json:"when" default:"2001-01-01T00:00:00Z"`
	}
	type deep struct {
		Bad []struct {
			C chan int `json:"c"`
		} `json:"bad"`
	}
	ok := []reflect.Type{
		reflect.TypeFor[ctMethods](), reflect.TypeFor[*ctMethods](), reflect.TypeFor[time.Time](),
		reflect.TypeFor[map[string][]*time.Time](), reflect.TypeFor[struct {
			E ctEncStruct `json:"e"`
		}](),
	}
	for _, typ := range ok {
		if err := CheckType(typ); err != nil {
			t.Errorf("%v: %v", typ, err)
		}
	}
	bad := []struct {
		typ   reflect.Type
		errAt string // the type and field in error
		path  string
		msg   string
	}{
		{reflect.TypeFor[*oneWayEnc](), "schema.inner", "Inner.Items[][]", "has MarshalJSON or MarshalText but no UnmarshalJSON or UnmarshalText, and cannot be decoded otherwise: kind func is not supported"},
		{reflect.TypeFor[oneWayDec](), "schema.oneWayDec", "D", "has UnmarshalJSON or UnmarshalText but no MarshalJSON or MarshalText, and cannot be encoded otherwise: kind chan is not supported"},
		{reflect.TypeFor[withDefault](), "schema.withDefault", "When", "bad default tag"},
		{reflect.TypeFor[deep](), "struct { C chan int \"json:\\\"c\\\"\" }", "Bad[].C", "type chan int: kind chan is not supported"},
		{reflect.TypeFor[struct {
			A ctEncArray `json:"a"`
		}](), "", "A", "cannot be decoded otherwise: kind array is not supported"},
	}
	for _, c := range bad {
		err := CheckType(c.typ)
		var te *TypeError
		if !errors.As(err, &te) {
			t.Errorf("%v: %v, want a *TypeError", c.typ, err)
			continue
		}
		t.Logf("%v: %v", c.typ, err)
		if te.Path != c.path || !strings.Contains(te.Msg, c.msg) || (c.errAt != "" && te.Type.String() != c.errAt) {
			t.Errorf("%v: got type %v field %q path %q msg %q", c.typ, te.Type, te.Field, te.Path, te.Msg)
		}
		if msg := err.Error(); !strings.Contains(msg, c.typ.String()) || !strings.Contains(msg, "field "+c.path) {
			t.Errorf("%v: message %q does not name the type and the field path", c.typ, msg)
		}
		if err2 := CheckType(c.typ); err2 != err {
			t.Errorf("%v: second answer %v is not the cached one", c.typ, err2)
		}
	}

	// The direction that works works; the other fails at the value.
	out, err := Marshal(&oneWayEnc{Inner: inner{Items: []map[string]ctEncOnly{{"k": nil}}}})
	if err != nil || string(out) != `{"inner":{"items":[{"k":"f"}]}}` {
		t.Errorf("Marshal: %s, %v", out, err)
	}
	var v oneWayEnc
	err = Unmarshal(out, &v)
	if pathOf(err) != `inner.items[0]["k"]` || !strings.Contains(err.Error(), "cannot be decoded otherwise") {
		t.Errorf("Unmarshal: %v", err)
	}
	if err := Unmarshal([]byte(`{"inner":{"items":[{}]}}`), &v); err != nil {
		t.Errorf("Unmarshal without the value: %v", err)
	}
	var d oneWayDec
	if err := Unmarshal([]byte(`{"d":"x"}`), &d); err != nil || d.D == nil {
		t.Errorf("Unmarshal: %v", err)
	}
	if _, err := Marshal(&d); err == nil || !strings.Contains(err.Error(), "encode d: type schema.ctDecOnly has no MarshalJSON") {
		t.Errorf("Marshal: %v", err)
	}
	// A struct with MarshalJSON only decodes through its fields.
	var es struct {
		E ctEncStruct `json:"e"`
	}
	if err := Unmarshal([]byte(`{"e":{"n":3}}`), &es); err != nil || es.E.N != 3 {
		t.Errorf("got %+v, %v", es, err)
	}
	if out, err := Marshal(&es); err != nil || string(out) != `{"e":30}` {
		t.Errorf("got %s, %v", out, err)
	}
}
