package schema

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"
)

// Bytes is the Go form of a Python `bytes` field. On the wire it is a JSON
// string holding the raw UTF-8 text of the bytes (not base64), because the
// Python side puts such fields on the bus with `.decode("utf-8")`. Encoding
// Bytes that are not valid UTF-8 is an error; binary content must be
// base64-encoded by the application before it is put in a Bytes field.
// Decoding takes any bytes: raw bytes in the JSON string that are not UTF-8
// are kept as they are, where a string field would be an error.
type Bytes []byte

// String returns the bytes as text.
func (b Bytes) String() string { return string(b) }

// MarshalJSON makes encoding/json write Bytes the way Marshal does: as a
// JSON string of the UTF-8 text. It fails on bytes that are not valid UTF-8.
func (b Bytes) MarshalJSON() ([]byte, error) {
	out, err := appendBytes(make([]byte, 0, len(b)+2), b)
	if err != nil {
		return nil, fmt.Errorf("schema.Bytes: %w", err)
	}
	return out, nil
}

// UnmarshalJSON makes encoding/json read Bytes the way Unmarshal does: from
// a JSON string (its UTF-8 bytes) or null (nil).
func (b *Bytes) UnmarshalJSON(data []byte) error {
	d := decoder{data: data}
	d.skipWS()
	if d.pos < len(d.data) && d.data[d.pos] == 'n' {
		if err := d.literal("null"); err != nil {
			return err
		}
		*b = nil
		return nil
	}
	if d.pos >= len(d.data) || d.data[d.pos] != '"' {
		return d.mismatch("string")
	}
	s, err := d.strRaw()
	if err != nil {
		return err
	}
	*b = append(Bytes{}, s...)
	return nil
}

// DecodeError is returned by Unmarshal for input that is not valid JSON or
// does not fit the target type. Its message names the field path and what
// was expected, e.g.
//
//	triples[3].s.iri: expected string, got number (offset 57)
type DecodeError struct {
	// Path is the field path of the value in error: JSON field names joined
	// by dots, list indexes as [3] and map keys as ["key"]. It is empty for
	// the top-level value.
	Path string
	// Msg says what was expected and what was found.
	Msg string
	// Offset is the byte offset in the input where the problem was found.
	Offset int
	// Err is the error a type's UnmarshalJSON or UnmarshalText returned,
	// or nil.
	Err error

	segs []string // path segments, innermost first, while unwinding
}

// Error implements error.
func (e *DecodeError) Error() string {
	if e.Path == "" {
		return e.Msg + " (offset " + strconv.Itoa(e.Offset) + ")"
	}
	return e.Path + ": " + e.Msg + " (offset " + strconv.Itoa(e.Offset) + ")"
}

// Unwrap returns Err.
func (e *DecodeError) Unwrap() error { return e.Err }

// EncodeError is returned by Marshal for a value that cannot be put on the
// wire, e.g. a Bytes field that is not valid UTF-8.
type EncodeError struct {
	// Path is the field path of the value in error, spelled as in DecodeError.
	Path string
	// Msg says what is wrong.
	Msg string
	// Err is the error a type's MarshalJSON or MarshalText returned, or nil.
	Err error

	segs []string // path segments, innermost first, while unwinding
}

// Error implements error.
func (e *EncodeError) Error() string {
	if e.Path == "" {
		return "encode: " + e.Msg
	}
	return "encode " + e.Path + ": " + e.Msg
}

// Unwrap returns Err.
func (e *EncodeError) Unwrap() error { return e.Err }

// TypeError is returned by Marshal, Unmarshal, Defaults and CheckType for a
// Go type the codec cannot handle: a field of an unsupported kind, a bad
// `default` tag, two fields with the same JSON name, or (CheckType) a type
// with a method for one direction only that cannot be handled otherwise in
// the other.
type TypeError struct {
	// Type is the type in error; for a field problem, the struct holding it.
	Type reflect.Type
	// Field is the Go name of the field in error, empty for a whole type.
	Field string
	// Msg says what is wrong.
	Msg string
	// Root is the type that was asked about (given to CheckType, or the
	// type of the value given to Marshal or Unmarshal). It is set when the
	// problem is in a field, possibly of a type Root reaches.
	Root reflect.Type
	// Path is the Go path from Root to the field in error: field names
	// joined by dots, with [] for an element of a list or map, e.g.
	// "Items[].When". It is set with Root.
	Path string
}

// Error implements error. It names the type and field in error and, when
// the field is deeper than Root's own fields, the path from Root:
//
//	schema: type *schema.Outer, field Items[].C (field C of schema.inner): kind chan is not supported
func (e *TypeError) Error() string {
	t := typeName(e.Type)
	switch {
	case e.Field == "":
		return "schema: type " + t + ": " + e.Msg
	case e.Root != nil && e.Path != "" && e.Path != e.Field:
		return "schema: type " + typeName(e.Root) + ", field " + e.Path + " (field " + e.Field + " of " + t + "): " + e.Msg
	}
	return "schema: type " + t + ", field " + e.Field + ": " + e.Msg
}

func typeName(t reflect.Type) string {
	if t == nil {
		return "<nil>"
	}
	return t.String()
}

// within returns a copy of e with seg in front of its path.
func (e *TypeError) within(seg string) *TypeError {
	cp := *e
	cp.Root = nil
	switch {
	case cp.Path == "":
		cp.Path = seg
	case strings.HasPrefix(cp.Path, "["):
		cp.Path = seg + cp.Path
	default:
		cp.Path = seg + "." + cp.Path
	}
	return &cp
}

// inField returns e as an error in field name of struct t: a problem with
// a type (the field's, or one it holds) becomes a problem of the field.
func (e *TypeError) inField(t reflect.Type, name string) *TypeError {
	if e.Field != "" {
		return e.within(name)
	}
	out := e.within(name)
	out.Type, out.Field, out.Msg = t, name, "type "+typeName(e.Type)+": "+e.Msg
	return out
}

// Paths are built while the code walking a value unwinds after an error:
// each level appends its segment (a field name, "[3]" or "[\"key\"]") to
// the error, innermost first, and the entry point joins them once.

func addSegment(err error, seg string) error {
	switch e := err.(type) {
	case *DecodeError:
		e.segs = append(e.segs, seg)
	case *EncodeError:
		e.segs = append(e.segs, seg)
	}
	return err
}

// withField adds a field name in front of the path of err. A name that is
// not a plain identifier (an unknown key can be anything) is written like a
// map key, ["a.b"], so the path stays unambiguous.
func withField(err error, name string) error {
	if !plainName(name) {
		return withKey(err, name)
	}
	return addSegment(err, name)
}

// plainName reports whether name can stand in a path without quoting.
func plainName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// withIndex adds a list index in front of the path of err.
func withIndex(err error, i int) error { return addSegment(err, "["+strconv.Itoa(i)+"]") }

// withKey adds a map key in front of the path of err.
func withKey(err error, key string) error { return addSegment(err, "["+strconv.Quote(key)+"]") }

// maxPathSegments bounds the segments an error path shows; deeper paths
// keep both ends with "..." between them.
const maxPathSegments = 64

// finishPath turns the segments gathered in err into its Path.
func finishPath(err error) error {
	var segs *[]string
	var path *string
	switch e := err.(type) {
	case *DecodeError:
		segs, path = &e.segs, &e.Path
	case *EncodeError:
		segs, path = &e.segs, &e.Path
	default:
		return err
	}
	if len(*segs) == 0 {
		return err
	}
	rev := *segs
	var b strings.Builder
	write := func(seg string) {
		if b.Len() > 0 && !strings.HasPrefix(seg, "[") {
			b.WriteByte('.')
		}
		b.WriteString(seg)
	}
	if len(rev) <= maxPathSegments {
		for i := len(rev) - 1; i >= 0; i-- {
			write(rev[i])
		}
	} else {
		half := maxPathSegments / 2
		for i := len(rev) - 1; i >= len(rev)-half; i-- {
			write(rev[i])
		}
		b.WriteString("...")
		for i := half - 1; i >= 0; i-- {
			if strings.HasPrefix(rev[i], "[") {
				b.WriteString(rev[i])
			} else {
				b.WriteString("." + rev[i])
			}
		}
	}
	if *path != "" {
		write(*path)
	}
	*path = b.String()
	*segs = nil
	return err
}

// Marshal returns the wire form of v, which is normally a pointer to a
// message struct. See the package documentation for the rules. Passing a
// pointer avoids a copy of the struct.
func Marshal(v any) ([]byte, error) {
	bp := encPool.Get().(*[]byte)
	buf, err := AppendMarshal((*bp)[:0], v)
	var out []byte
	if err == nil {
		out = make([]byte, len(buf))
		copy(out, buf)
	}
	if cap(buf) <= maxPooledBuf {
		*bp = buf
		encPool.Put(bp)
	}
	return out, err
}

const maxPooledBuf = 1 << 20

var encPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// AppendMarshal appends the wire form of v to dst and returns the extended
// slice. When v is a pointer and dst has room it allocates nothing, except
// to sort the keys of maps with more than one entry and for `any` values of
// types other than the encoding/json shapes. On error it returns dst with
// its original length, and the error.
func AppendMarshal(dst []byte, v any) ([]byte, error) {
	if v == nil {
		return append(dst, "null"...), nil
	}
	t := reflect.TypeOf(v)
	c, err := planFor(t)
	if err != nil {
		return dst, err
	}
	n := len(dst)
	var p unsafe.Pointer
	if t.Kind() == reflect.Pointer {
		ptr := reflect.ValueOf(v).UnsafePointer()
		if ptr == nil {
			return append(dst, "null"...), nil
		}
		c = c.elem
		p = ptr
	} else {
		// Copy the value so it is addressable.
		nv := reflect.New(t)
		nv.Elem().Set(reflect.ValueOf(v))
		p = nv.UnsafePointer()
	}
	out, err := encodeValue(dst, p, c, 0)
	if err != nil {
		return dst[:n], finishPath(err)
	}
	return out, nil
}

// Unmarshal decodes the JSON document data into the value v points to,
// normally a message struct. The target is first reset to its declared
// defaults, so keys missing from data (or given as null) keep them. See the
// package documentation for the rules. Errors are *DecodeError (bad input)
// or *TypeError (a type the codec cannot handle). On error the target may
// be partly filled.
func Unmarshal(data []byte, v any) error {
	p, c, err := target(v, "Unmarshal")
	if err != nil {
		return err
	}
	d := decPool.Get().(*decoder)
	d.data, d.pos, d.depth = data, 0, 0
	err = finishPath(d.document(p, c))
	d.data = nil
	if cap(d.scratch) <= maxPooledBuf {
		decPool.Put(d)
	}
	return err
}

// decPool keeps decoders, and so their scratch buffers, between calls.
var decPool = sync.Pool{New: func() any { return new(decoder) }}

// Defaults resets the value v points to (normally a message struct) to its
// declared defaults: every field with a `default` tag gets its value, nested
// structs get theirs, and every other field is zero. It is what Unmarshal
// starts from, and fits constructors:
//
//	req := new(schema.TextCompletionRequest)
//	if err := schema.Defaults(req); err != nil { ... } // req.Operation == "completion"
func Defaults(v any) error {
	p, c, err := target(v, "Defaults")
	if err != nil {
		return err
	}
	c.reset(p)
	return nil
}

// CheckType reports whether the codec can encode and decode values of type
// t: every field type is supported, every `default` tag parses, no two
// fields share a JSON name, and a type with a method for one direction only
// (MarshalJSON without UnmarshalJSON, say) can be handled by its kind in the
// other. Types with json.Marshaler, json.Unmarshaler,
// encoding.TextMarshaler and encoding.TextUnmarshaler methods (time.Time,
// for one) are accepted. The error is a *TypeError naming t, the field path
// from t and the type in error. The answer is cached; Marshal and Unmarshal
// give the same error for a type whose plan cannot be built. Use it to check
// message types up front.
func CheckType(t reflect.Type) error {
	if t == nil {
		return &TypeError{Msg: "nil type"}
	}
	if v, ok := checkCache.Load(t); ok {
		return v.(*planEntry).err
	}
	c, err := planFor(t)
	if err == nil {
		if te := oneWay(c, true, map[*codec]bool{}); te != nil {
			err = te.rooted(t)
		} else if te := oneWay(c, false, map[*codec]bool{}); te != nil {
			err = te.rooted(t)
		}
	}
	checkCache.Store(t, &planEntry{err: err})
	return err
}

// checkCache holds the answers of CheckType: reflect.Type -> *planEntry.
var checkCache sync.Map

// rooted returns e with Root set to t when e is about a field.
func (e *TypeError) rooted(t reflect.Type) error {
	if e.Path != "" {
		e.Root = t
	}
	return e
}

// oneWay returns an error for the first value reachable from plan c that
// cannot be encoded (enc) or decoded (!enc): a type with a method for the
// other direction only, whose kind the codec does not handle.
func oneWay(c *codec, enc bool, seen map[*codec]bool) *TypeError {
	if seen[c] {
		return nil
	}
	seen[c] = true
	switch c.kind {
	case kCustom:
		h := c.hooks
		if enc && h.enc != hookNone || !enc && h.dec != hookNone {
			return nil
		}
		if h.fallback != nil {
			return oneWay(h.fallback, enc, seen)
		}
		has, lacks, verb := "UnmarshalJSON or UnmarshalText", "MarshalJSON or MarshalText", "encoded"
		if !enc {
			has, lacks, verb = lacks, has, "decoded"
		}
		return &TypeError{Type: c.typ, Msg: "has " + has + " but no " + lacks +
			", and cannot be " + verb + " otherwise: " + h.fallbackErr.Msg}
	case kPtr:
		return oneWay(c.elem, enc, seen)
	case kSlice, kMap:
		if te := oneWay(c.elem, enc, seen); te != nil {
			return te.within("[]")
		}
	case kStruct:
		for i := range c.fields {
			f := &c.fields[i]
			if te := oneWay(f.c, enc, seen); te != nil {
				return te.inField(c.typ, f.goName)
			}
		}
	}
	return nil
}

// target checks that v is a non-nil pointer and returns what it points to
// with the plan of the pointee type.
func target(v any, fn string) (unsafe.Pointer, *codec, error) {
	if v == nil {
		return nil, nil, &TypeError{Msg: fn + " needs a non-nil pointer, got nil"}
	}
	t := reflect.TypeOf(v)
	if t.Kind() != reflect.Pointer {
		return nil, nil, &TypeError{Type: t, Msg: fn + " needs a non-nil pointer, got " + t.String()}
	}
	c, err := planFor(t)
	if err != nil {
		return nil, nil, err
	}
	p := reflect.ValueOf(v).UnsafePointer()
	if p == nil {
		return nil, nil, &TypeError{Type: t, Msg: fn + " needs a non-nil pointer, got a nil " + t.String()}
	}
	return p, c.elem, nil
}

// invalidUTF8At returns the index of the first byte of b that is not part of
// valid UTF-8, or -1.
func invalidUTF8At(b []byte) int {
	return invalidAt(b, false)
}

// invalidWTF8At is invalidUTF8At that also accepts the WTF-8 form of lone
// surrogates, which the decoder makes from \ud800 escapes.
func invalidWTF8At(b []byte) int {
	return invalidAt(b, true)
}

func invalidAt(b []byte, surrogates bool) int {
	if utf8.Valid(b) {
		return -1
	}
	i := 0
	for i < len(b) {
		if b[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			if !surrogates || surrogateAt(b, i) == 0 {
				return i
			}
			size = 3
		}
		i += size
	}
	return -1
}

// AppendString appends s to dst as a JSON string, escaped as the codec
// escapes strings: what JSON requires plus U+2028 and U+2029, the WTF-8
// form of a lone surrogate as its \uXXXX escape, other invalid UTF-8 as
// U+FFFD, and no HTML escaping. Adapters use it to write small JSON
// wrappers without encoding/json's reflection.
func AppendString(dst []byte, s string) []byte { return appendString(dst, s) }
