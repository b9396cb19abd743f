package rrclient

import (
	"encoding"
	"encoding/json"
	"reflect"
	"strings"
	"sync"

	"github.com/switchyard-go/switchyard/schema"
)

// ErrorOf returns the `error` field of message v (a struct or a pointer to
// one): the field whose JSON name is "error" and whose type is
// *schema.Error, as schema.HasErrorField and schema.SetError find it. It
// returns nil when the field is nil, when v's type has no such field, and
// when v is nil. The field is looked up by reflection once per type.
func ErrorOf(v any) *schema.Error {
	if v == nil {
		return nil
	}
	rv := reflect.ValueOf(v)
	idx := errorIndex(rv.Type())
	if idx == nil {
		return nil
	}
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil
		}
		rv = rv.Elem()
	}
	return errorAt(rv, idx)
}

// errorAt returns the *schema.Error at field index idx of struct value rv.
func errorAt(rv reflect.Value, idx []int) *schema.Error {
	e, _ := rv.FieldByIndex(idx).Interface().(*schema.Error)
	return e
}

var (
	rtErrorPtr = reflect.TypeFor[*schema.Error]()
	// errorIndexes maps a type to its []int field index of the error field,
	// nil when it has none.
	errorIndexes sync.Map
)

// errorIndex returns the index path of the error field of t (a struct type
// or a pointer to one), or nil if it has none.
func errorIndex(t reflect.Type) []int {
	if v, ok := errorIndexes.Load(t); ok {
		return v.([]int)
	}
	st := t
	if st.Kind() == reflect.Pointer {
		st = st.Elem()
	}
	var idx []int
	if st.Kind() == reflect.Struct {
		idx = findErrorField(st)
	}
	v, _ := errorIndexes.LoadOrStore(t, idx)
	return v.([]int)
}

// errorCandidate is a struct field whose JSON name is "error".
type errorCandidate struct {
	index  []int
	typ    reflect.Type
	depth  int
	tagged bool
}

// findErrorField resolves the JSON name "error" in struct t the way the
// schema codec (and encoding/json) does: fields of embedded structs without
// a JSON name are promoted, the shallowest field wins, then a tagged one.
// It returns the winner's index if its type is *schema.Error.
func findErrorField(t reflect.Type) []int {
	var cands []errorCandidate
	collectErrorFields(t, nil, 0, &cands)
	if len(cands) == 0 {
		return nil
	}
	best := cands[0]
	tie := false
	for _, c := range cands[1:] {
		switch {
		case c.depth < best.depth || (c.depth == best.depth && c.tagged && !best.tagged):
			best, tie = c, false
		case c.depth == best.depth && c.tagged == best.tagged:
			tie = true
		}
	}
	if tie || best.typ != rtErrorPtr {
		return nil
	}
	return best.index
}

var (
	rtJSONUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	rtTextUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	rtJSONMarshaler   = reflect.TypeFor[json.Marshaler]()
	rtTextMarshaler   = reflect.TypeFor[encoding.TextMarshaler]()
)

// hasHooks reports whether struct type t encodes or decodes itself, so that
// an embedded t is one field rather than a set of promoted ones.
func hasHooks(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	for _, i := range []reflect.Type{rtJSONUnmarshaler, rtTextUnmarshaler, rtJSONMarshaler, rtTextMarshaler} {
		if pt.Implements(i) {
			return true
		}
	}
	return false
}

func collectErrorFields(t reflect.Type, prefix []int, depth int, out *[]errorCandidate) {
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag, tagged := sf.Tag.Lookup("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		index := append(append([]int(nil), prefix...), i)
		if sf.Anonymous && name == "" && sf.Type.Kind() == reflect.Struct && !hasHooks(sf.Type) {
			collectErrorFields(sf.Type, index, depth+1, out)
			continue
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name, tagged = sf.Name, false
		}
		if name == "error" {
			*out = append(*out, errorCandidate{index: index, typ: sf.Type, depth: depth, tagged: tagged})
		}
	}
}
