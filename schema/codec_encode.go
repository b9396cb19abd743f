package schema

import (
	"encoding"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// encodeValue appends the JSON form of p, a value of plan c, to dst.
func encodeValue(dst []byte, p unsafe.Pointer, c *codec, depth int) ([]byte, error) {
	switch c.kind {
	case kString:
		return appendString(dst, *(*string)(p)), nil
	case kBool:
		if *(*bool)(p) {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case kInt:
		return strconv.AppendInt(dst, loadInt(p, c.bits), 10), nil
	case kUint:
		return strconv.AppendUint(dst, loadUint(p, c.bits), 10), nil
	case kFloat:
		if c.bits == 32 {
			return appendTypedFloat(dst, float64(*(*float32)(p)), 32), nil
		}
		return appendTypedFloat(dst, *(*float64)(p), 64), nil
	case kBytes:
		return appendBytes(dst, *(*[]byte)(p))
	case kRaw:
		return appendRaw(dst, *(*[]byte)(p))
	case kNumber:
		return appendNumber(dst, *(*string)(p))
	case kAny:
		return encodeAny(dst, *(*any)(p), depth)
	case kPtr:
		ptr := *(*unsafe.Pointer)(p)
		if ptr == nil {
			return append(dst, "null"...), nil
		}
		if depth >= maxDepth {
			return dst, tooDeep()
		}
		return encodeValue(dst, ptr, c.elem, depth+1)
	case kSlice:
		if depth >= maxDepth {
			return dst, tooDeep()
		}
		return encodeSlice(dst, p, c, depth+1)
	case kMap:
		if depth >= maxDepth {
			return dst, tooDeep()
		}
		return encodeMap(dst, p, c, depth+1)
	case kStruct:
		if depth >= maxDepth {
			return dst, tooDeep()
		}
		return encodeStruct(dst, p, c, depth+1)
	case kCustom:
		return encodeCustom(dst, p, c, depth)
	}
	return dst, &EncodeError{Msg: "unsupported type " + c.typ.String()}
}

// encodeCustom appends the JSON form of p, a value of a type with its own
// MarshalJSON or MarshalText, to dst. The JSON a MarshalJSON returns must be
// one valid value; MarshalText's text is written as a JSON string.
func encodeCustom(dst []byte, p unsafe.Pointer, c *codec, depth int) ([]byte, error) {
	h := c.hooks
	switch h.enc {
	case hookJSON:
		m := reflect.NewAt(c.typ, p).Interface().(json.Marshaler)
		out, err := m.MarshalJSON()
		if err != nil {
			return dst, &EncodeError{Msg: "MarshalJSON of " + c.typ.String() + ": " + err.Error(), Err: err}
		}
		if len(out) == 0 {
			return dst, &EncodeError{Msg: "MarshalJSON of " + c.typ.String() + " returned nothing"}
		}
		return appendValue(dst, out, "MarshalJSON of "+c.typ.String()+" returned invalid JSON")
	case hookText:
		m := reflect.NewAt(c.typ, p).Interface().(encoding.TextMarshaler)
		out, err := m.MarshalText()
		if err != nil {
			return dst, &EncodeError{Msg: "MarshalText of " + c.typ.String() + ": " + err.Error(), Err: err}
		}
		return appendString(dst, unsafe.String(unsafe.SliceData(out), len(out))), nil
	}
	if h.fallback == nil {
		return dst, &EncodeError{Msg: "type " + c.typ.String() + " has no MarshalJSON or MarshalText method and cannot be encoded otherwise: " + h.fallbackErr.Msg}
	}
	return encodeValue(dst, p, h.fallback, depth)
}

func tooDeep() error {
	return &EncodeError{Msg: fmt.Sprintf("value nested deeper than %d levels (a pointer cycle?)", maxDepth)}
}

func encodeStruct(dst []byte, p unsafe.Pointer, c *codec, depth int) ([]byte, error) {
	dst = append(dst, '{')
	first := true
	for i := range c.fields {
		f := &c.fields[i]
		fp := unsafe.Add(p, f.offset)
		if f.c.kind == kPtr && *(*unsafe.Pointer)(fp) == nil {
			if f.def == nil {
				continue // Python None: omitted, read back as the default None
			}
			// The default is not None, so None must be written to survive.
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = append(dst, f.key...)
			dst = append(dst, "null"...)
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, f.key...)
		var err error
		if f.c.kind == kString {
			dst = appendString(dst, *(*string)(fp))
			continue
		}
		if dst, err = encodeValue(dst, fp, f.c, depth); err != nil {
			return dst, withField(err, f.name)
		}
	}
	return append(dst, '}'), nil
}

func encodeSlice(dst []byte, p unsafe.Pointer, c *codec, depth int) ([]byte, error) {
	dst = append(dst, '[')
	switch c.fast {
	case fastStrings:
		for i, s := range *(*[]string)(p) {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, s)
		}
		return append(dst, ']'), nil
	case fastFloat64s:
		for i, f := range *(*[]float64)(p) {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendTypedFloat(dst, f, 64)
		}
		return append(dst, ']'), nil
	case fastInt64s:
		for i, v := range *(*[]int64)(p) {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendInt(dst, v, 10)
		}
		return append(dst, ']'), nil
	}
	h := (*sliceHeader)(p)
	size := c.elem.size
	var err error
	for i := 0; i < h.len; i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		if dst, err = encodeValue(dst, unsafe.Add(h.data, uintptr(i)*size), c.elem, depth); err != nil {
			return dst, withIndex(err, i)
		}
	}
	return append(dst, ']'), nil
}

func encodeMap(dst []byte, p unsafe.Pointer, c *codec, depth int) ([]byte, error) {
	switch c.fast {
	case fastMapString:
		return encodeMapString(dst, *(*map[string]string)(p)), nil
	case fastMapAny:
		return encodeMapAny(dst, *(*map[string]any)(p), depth)
	}
	mv := reflect.NewAt(c.typ, p).Elem()
	n := mv.Len()
	if n == 0 {
		return append(dst, "{}"...), nil
	}
	// Copy the entries out so they can be written in key order.
	keys := make([]string, 0, n)
	vals := reflect.MakeSlice(reflect.SliceOf(c.elem.typ), n, n)
	kv := reflect.New(c.typ.Key()).Elem()
	it := mv.MapRange()
	for i := 0; it.Next() && i < n; i++ {
		kv.SetIterKey(it)
		keys = append(keys, kv.String())
		vals.Index(i).SetIterValue(it)
	}
	order := make([]int, len(keys))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(keys[a], keys[b]) })
	base := vals.UnsafePointer()
	size := c.elem.size
	dst = append(dst, '{')
	var err error
	for j, i := range order {
		if j > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, keys[i])
		dst = append(dst, ':')
		if dst, err = encodeValue(dst, unsafe.Add(base, uintptr(i)*size), c.elem, depth); err != nil {
			return dst, withKey(err, keys[i])
		}
	}
	return append(dst, '}'), nil
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func encodeMapString(dst []byte, m map[string]string) []byte {
	dst = append(dst, '{')
	if len(m) == 1 {
		for k, v := range m {
			dst = appendString(dst, k)
			dst = append(dst, ':')
			dst = appendString(dst, v)
		}
	} else if len(m) > 1 {
		for i, k := range sortedKeys(m) {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, k)
			dst = append(dst, ':')
			dst = appendString(dst, m[k])
		}
	}
	return append(dst, '}')
}

func encodeMapAny(dst []byte, m map[string]any, depth int) ([]byte, error) {
	dst = append(dst, '{')
	if len(m) == 0 {
		return append(dst, '}'), nil
	}
	var err error
	for i, k := range sortedKeys(m) {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, k)
		dst = append(dst, ':')
		if dst, err = encodeAny(dst, m[k], depth); err != nil {
			return dst, withKey(err, k)
		}
	}
	return append(dst, '}'), nil
}

// encodeAny appends the JSON form of a dynamically typed value.
func encodeAny(dst []byte, v any, depth int) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case string:
		return appendString(dst, x), nil
	case bool:
		if x {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case float64:
		return appendTypedFloat(dst, x, 64), nil
	case float32:
		return appendTypedFloat(dst, float64(x), 32), nil
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case json.Number:
		return appendNumber(dst, string(x))
	case json.RawMessage:
		return appendRaw(dst, x)
	case map[string]any:
		if depth >= maxDepth {
			return dst, tooDeep()
		}
		return encodeMapAny(dst, x, depth+1)
	case []any:
		if depth >= maxDepth {
			return dst, tooDeep()
		}
		dst = append(dst, '[')
		var err error
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = encodeAny(dst, e, depth+1); err != nil {
				return dst, withIndex(err, i)
			}
		}
		return append(dst, ']'), nil
	}
	t := reflect.TypeOf(v)
	c, err := planFor(t)
	if err != nil {
		return dst, &EncodeError{Msg: err.Error()}
	}
	if t.Kind() == reflect.Pointer {
		ptr := reflect.ValueOf(v).UnsafePointer()
		if ptr == nil {
			return append(dst, "null"...), nil
		}
		if depth >= maxDepth {
			return dst, tooDeep()
		}
		return encodeValue(dst, ptr, c.elem, depth+1)
	}
	nv := reflect.New(t)
	nv.Elem().Set(reflect.ValueOf(v))
	return encodeValue(dst, nv.UnsafePointer(), c, depth)
}

// appendTypedFloat appends a Go float, in a float field or inside an any. A
// whole number gets a ".0", as Python writes it (1.0, -0.0), so that Python
// reads a float back, not an int, and keeps the sign of zero. Numbers read
// into an any are json.Number values and keep their own text.
func appendTypedFloat(dst []byte, f float64, bits int) []byte {
	start := len(dst)
	dst = appendFloat(dst, f, bits)
	for _, c := range dst[start:] {
		switch c {
		case '.', 'e', 'N', 'I':
			return dst
		}
	}
	return append(dst, ".0"...)
}

// appendFloat appends f as Python's json reads it back: the shortest text
// that gives the same value, NaN, Infinity or -Infinity.
func appendFloat(dst []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	}
	// Plain notation for ordinary magnitudes, exponent notation for very
	// small and very large ones, like encoding/json.
	format := byte('f')
	if abs := math.Abs(f); abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) ||
			bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	dst = strconv.AppendFloat(dst, f, format, -1, bits)
	if format == 'e' {
		// 1e-07 -> 1e-7
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

// appendBytes appends b as a JSON string of its UTF-8 text.
func appendBytes(dst, b []byte) ([]byte, error) {
	if i := invalidWTF8At(b); i >= 0 {
		return dst, &EncodeError{Msg: fmt.Sprintf("bytes are not valid UTF-8 (byte %d is 0x%02x); base64-encode binary data", i, b[i])}
	}
	return appendString(dst, unsafe.String(unsafe.SliceData(b), len(b))), nil
}

// appendRaw appends a json.RawMessage after checking that it holds exactly
// one JSON value. An empty one is written as null.
func appendRaw(dst, raw []byte) ([]byte, error) {
	if len(raw) == 0 {
		return append(dst, "null"...), nil
	}
	return appendValue(dst, raw, "invalid json.RawMessage")
}

// appendValue appends raw, without the whitespace around it, after checking
// that it holds exactly one JSON value; what prefixes the error message.
func appendValue(dst, raw []byte, what string) ([]byte, error) {
	d := decoder{data: raw}
	d.skipWS()
	start := d.pos
	if err := d.skip(); err != nil {
		return dst, &EncodeError{Msg: what + ": " + err.Error()}
	}
	end := d.pos
	d.skipWS()
	if d.pos != len(raw) {
		return dst, &EncodeError{Msg: fmt.Sprintf("%s: unexpected %s after the value (offset %d)", what, d.found(), d.pos)}
	}
	return append(dst, raw[start:end]...), nil
}

// appendNumber appends a json.Number after checking it; an empty one is 0.
func appendNumber(dst []byte, s string) ([]byte, error) {
	if s == "" {
		return append(dst, '0'), nil
	}
	d := decoder{data: unsafe.Slice(unsafe.StringData(s), len(s))}
	ok, _, err := d.nonFinite()
	if !ok {
		_, _, err = d.number()
	}
	if err != nil || d.pos != len(s) {
		return dst, &EncodeError{Msg: fmt.Sprintf("invalid json.Number %q", s)}
	}
	return append(dst, s...), nil
}

// plainASCII marks the ASCII bytes a JSON string holds as they are.
var plainASCII = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. It escapes what JSON requires
// plus U+2028 and U+2029, writes the WTF-8 form of a lone surrogate (ED A0
// 80 to ED BF BF) as its \uXXXX escape, replaces other invalid UTF-8 with
// U+FFFD, and leaves other UTF-8 and <, >, & as they are (Python does not
// HTML-escape).
func appendString(dst []byte, s string) []byte {
	b := unsafe.Slice(unsafe.StringData(s), len(s))
	dst = append(dst, '"')
	start, i := 0, 0
	for i < len(b) {
		for i+8 <= len(b) && special8(binary.LittleEndian.Uint64(b[i:])) == 0 {
			i += 8
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		if c < utf8.RuneSelf {
			if plainASCII[c] {
				i++
				continue
			}
			dst = append(dst, b[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, b[start:i]...)
			if sr := surrogateAt(b, i); sr != 0 {
				// A lone surrogate read from a \ud800 escape: write the
				// escape back, as Python does.
				dst = append(dst, '\\', 'u', 'd', hexDigits[sr>>8&0xf], hexDigits[sr>>4&0xf], hexDigits[sr&0xf])
				i += 3
			} else {
				dst = append(dst, `\ufffd`...)
				i++
			}
			start = i
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, b[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
		default:
			i += size
		}
	}
	dst = append(dst, b[start:]...)
	return append(dst, '"')
}
