package schema

import (
	"encoding"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"unsafe"
)

// How a struct to decode into stands when its object starts.
const (
	modeReady  uint8 = iota // already holds its declared defaults
	modeZeroed              // zero memory: defaults still to set
	modeDirty               // holds old values: clear, then set defaults
)

// document decodes the whole input into p, a value of plan c.
func (d *decoder) document(p unsafe.Pointer, c *codec) error {
	d.skipWS()
	if d.pos >= len(d.data) {
		return d.eof(expectedOf(c))
	}
	if d.data[d.pos] == 'n' {
		return d.mismatch(expectedOf(c))
	}
	c.reset(p)
	if err := d.value(p, c, modeReady); err != nil {
		return err
	}
	d.skipWS()
	if d.pos < len(d.data) {
		return d.syntaxErr(d.pos, "unexpected %s after the top-level value", d.found())
	}
	return nil
}

// expectedOf names the JSON type a plan reads, for error messages.
func expectedOf(c *codec) string {
	switch c.kind {
	case kBool:
		return "boolean"
	case kInt, kUint:
		return "integer"
	case kFloat, kNumber:
		return "number"
	case kString, kBytes:
		return "string"
	case kPtr:
		return expectedOf(c.elem)
	case kSlice:
		return "array"
	case kMap, kStruct:
		return "object"
	case kCustom:
		if c.hooks.dec == hookText {
			return "string"
		}
		if c.hooks.dec == hookNone && c.hooks.fallback != nil {
			return expectedOf(c.hooks.fallback)
		}
	}
	return "value"
}

// value decodes the JSON value at d.pos into p, a value of plan c. mode
// says what p holds when c is a struct.
func (d *decoder) value(p unsafe.Pointer, c *codec, mode uint8) error {
	d.skipWS()
	if d.pos >= len(d.data) {
		return d.eof(expectedOf(c))
	}
	ch := d.data[d.pos]
	if ch == 'n' {
		if err := d.literal("null"); err != nil {
			return err
		}
		d.null(p, c, mode)
		return nil
	}
	switch c.kind {
	case kString:
		if ch != '"' {
			return d.mismatch("string")
		}
		s, err := d.str()
		if err != nil {
			return err
		}
		*(*string)(p) = string(s)
	case kBool:
		switch ch {
		case 't':
			if err := d.literal("true"); err != nil {
				return err
			}
			*(*bool)(p) = true
		case 'f':
			if err := d.literal("false"); err != nil {
				return err
			}
			*(*bool)(p) = false
		default:
			return d.mismatch("boolean")
		}
	case kInt:
		v, err := d.intValue(c.bits)
		if err != nil {
			return err
		}
		storeInt(p, c.bits, v)
	case kUint:
		v, err := d.uintValue(c.bits)
		if err != nil {
			return err
		}
		storeUint(p, c.bits, v)
	case kFloat:
		f, err := d.floatValue(c.bits)
		if err != nil {
			return err
		}
		storeFloat(p, c.bits, f)
	case kBytes:
		if ch != '"' {
			return d.mismatch("string")
		}
		s, err := d.strRaw()
		if err != nil {
			return err
		}
		*(*[]byte)(p) = append(make([]byte, 0, len(s)), s...)
	case kRaw:
		start := d.pos
		if err := d.skip(); err != nil {
			return err
		}
		*(*[]byte)(p) = append(make([]byte, 0, d.pos-start), d.data[start:d.pos]...)
	case kNumber:
		start := d.pos
		if ok, _, err := d.nonFinite(); ok {
			if err != nil {
				return err
			}
		} else {
			if ch != '-' && (ch < '0' || ch > '9') {
				return d.mismatch("number")
			}
			if _, _, err := d.number(); err != nil {
				return err
			}
		}
		*(*string)(p) = string(d.data[start:d.pos])
	case kAny:
		v, err := d.anyValue()
		if err != nil {
			return err
		}
		*(*any)(p) = v
	case kPtr:
		np := reflect.New(c.elem.typ).UnsafePointer()
		if err := d.value(np, c.elem, modeZeroed); err != nil {
			return err
		}
		*(*unsafe.Pointer)(p) = np
	case kSlice:
		if ch != '[' {
			return d.mismatch("array")
		}
		return d.slice(p, c)
	case kMap:
		if ch != '{' {
			return d.mismatch("object")
		}
		return d.mapValue(p, c)
	case kStruct:
		if ch != '{' {
			return d.mismatch("object")
		}
		return d.object(p, c, mode)
	case kCustom:
		return d.custom(p, c, mode)
	}
	return nil
}

// custom decodes the JSON value at d.pos (not null) into p, a value of a
// type with its own UnmarshalJSON or UnmarshalText. UnmarshalJSON gets the
// value's text, checked to be valid JSON; UnmarshalText gets the content of
// a JSON string.
func (d *decoder) custom(p unsafe.Pointer, c *codec, mode uint8) error {
	h := c.hooks
	switch h.dec {
	case hookJSON:
		start := d.pos
		if err := d.skip(); err != nil {
			return err
		}
		u := reflect.NewAt(c.typ, p).Interface().(json.Unmarshaler)
		if err := u.UnmarshalJSON(d.data[start:d.pos]); err != nil {
			return &DecodeError{Msg: "UnmarshalJSON of " + c.typ.String() + ": " + err.Error(), Offset: start, Err: err}
		}
		return nil
	case hookText:
		if d.data[d.pos] != '"' {
			return d.mismatch("string")
		}
		start := d.pos
		s, err := d.str()
		if err != nil {
			return err
		}
		u := reflect.NewAt(c.typ, p).Interface().(encoding.TextUnmarshaler)
		if err := u.UnmarshalText(s); err != nil {
			return &DecodeError{Msg: "UnmarshalText of " + c.typ.String() + ": " + err.Error(), Offset: start, Err: err}
		}
		return nil
	}
	if h.fallback == nil {
		return &DecodeError{Msg: "type " + c.typ.String() + " has no UnmarshalJSON or UnmarshalText method and cannot be decoded otherwise: " +
			h.fallbackErr.Msg, Offset: d.pos}
	}
	return d.value(p, h.fallback, mode)
}

// null stores what a JSON null gives for a value of plan c at p: zero, or a
// struct's defaults.
func (d *decoder) null(p unsafe.Pointer, c *codec, mode uint8) {
	if c.kind == kStruct {
		switch mode {
		case modeZeroed:
			c.applyDefaults(p)
		case modeDirty:
			c.reset(p)
		}
		return
	}
	zero(p, c)
}

// key reads an object key at d.pos and the ':' after it. The result is
// valid until the next string is read.
func (d *decoder) key() ([]byte, error) {
	if d.pos >= len(d.data) || d.data[d.pos] != '"' {
		return nil, d.keyErr()
	}
	k, err := d.str()
	if err != nil {
		return nil, err
	}
	if err := d.colon(); err != nil {
		return nil, err
	}
	return k, nil
}

// open consumes the '{' or '[' at d.pos and reports whether the container
// is empty (and then consumes its end too).
func (d *decoder) open(closing byte) (bool, error) {
	if d.depth++; d.depth > maxDepth {
		return false, d.syntaxErr(d.pos, "nesting deeper than %d levels", maxDepth)
	}
	d.pos++
	d.skipWS()
	if d.pos < len(d.data) && d.data[d.pos] == closing {
		d.pos++
		d.depth--
		return true, nil
	}
	return false, nil
}

// object decodes a JSON object into struct p of plan c.
func (d *decoder) object(p unsafe.Pointer, c *codec, mode uint8) error {
	switch mode {
	case modeZeroed:
		c.applyDefaults(p)
	case modeDirty:
		c.reset(p)
	}
	empty, err := d.open('}')
	if err != nil || empty {
		return err
	}
	fields := c.fields
	var seen uint64
	next := 0
	for {
		k, err := d.key()
		if err != nil {
			return err
		}
		idx := -1
		if next < len(fields) && string(k) == fields[next].name {
			idx = next
		} else if i, ok := c.byName[string(k)]; ok {
			idx = i
		}
		if idx < 0 {
			if err := d.skip(); err != nil {
				return withField(err, string(k))
			}
		} else {
			next = idx + 1
			f := &fields[idx]
			fp := unsafe.Add(p, f.offset)
			m := modeDirty
			if idx < 64 {
				if bit := uint64(1) << idx; seen&bit == 0 {
					seen |= bit
					m = modeReady
				}
			}
			if err := d.field(fp, f, m); err != nil {
				return withField(err, f.name)
			}
		}
		more, err := d.next('}')
		if err != nil {
			return err
		}
		if !more {
			d.depth--
			return nil
		}
	}
}

// field decodes the value of struct field f at fp.
func (d *decoder) field(fp unsafe.Pointer, f *field, mode uint8) error {
	if d.pos >= len(d.data) {
		return d.eof(expectedOf(f.c))
	}
	switch d.data[d.pos] {
	case 'n':
		// null is a missing key: the declared default, nil for a pointer.
		if err := d.literal("null"); err != nil {
			return err
		}
		switch {
		case f.c.kind == kPtr:
			*(*unsafe.Pointer)(fp) = nil
		case f.def != nil:
			setDefault(fp, f.c, f.def)
		default:
			d.null(fp, f.c, mode)
		}
		return nil
	case '"':
		if f.c.kind == kString {
			s, err := d.str()
			if err != nil {
				return err
			}
			if f.def != nil && string(s) == f.def.s {
				*(*string)(fp) = f.def.s // no copy for the common default
			} else {
				*(*string)(fp) = string(s)
			}
			return nil
		}
	}
	return d.value(fp, f.c, mode)
}

// slice decodes a JSON array into slice p of plan c.
func (d *decoder) slice(p unsafe.Pointer, c *codec) error {
	empty, err := d.open(']')
	if err != nil {
		return err
	}
	if empty {
		v := reflect.MakeSlice(c.typ, 0, 0)
		*(*sliceHeader)(p) = sliceHeader{data: v.UnsafePointer()}
		return nil
	}
	switch c.fast {
	case fastStrings:
		return d.strings(p)
	case fastFloat64s:
		return d.float64s(p)
	case fastInt64s:
		return d.int64s(p)
	case fastAnys:
		return d.anys(p)
	}
	var (
		arr  reflect.Value
		base unsafe.Pointer
		n    int
		cp   int
		size = c.elem.size
	)
	for {
		if n == cp {
			ncp := 4
			if cp > 0 {
				ncp = cp * 2
			}
			na := reflect.MakeSlice(c.typ, ncp, ncp)
			if n > 0 {
				reflect.Copy(na, arr)
			}
			arr, base, cp = na, na.UnsafePointer(), ncp
		}
		if err := d.value(unsafe.Add(base, uintptr(n)*size), c.elem, modeZeroed); err != nil {
			return withIndex(err, n)
		}
		n++
		more, err := d.next(']')
		if err != nil {
			return err
		}
		if !more {
			break
		}
	}
	d.depth--
	*(*sliceHeader)(p) = sliceHeader{data: base, len: n, cap: cp}
	return nil
}

// fastSlice decodes the elements of a JSON array whose '[' was consumed
// into *(*[]T)(p), calling elem for each; a null element is T's zero value
// where nullable is true. It serves the element types common enough to skip
// the reflective path.
func fastSlice[T any](d *decoder, p unsafe.Pointer, capacity int, nullable bool, elem func() (T, error)) error {
	out := make([]T, 0, capacity)
	for {
		d.skipWS()
		var v T
		if nullable && d.pos < len(d.data) && d.data[d.pos] == 'n' {
			if err := d.literal("null"); err != nil {
				return withIndex(err, len(out))
			}
		} else {
			var err error
			if v, err = elem(); err != nil {
				return withIndex(err, len(out))
			}
		}
		out = append(out, v)
		more, err := d.next(']')
		if err != nil {
			return err
		}
		if !more {
			break
		}
	}
	d.depth--
	*(*[]T)(p) = out
	return nil
}

func (d *decoder) strings(p unsafe.Pointer) error {
	return fastSlice(d, p, 4, true, func() (string, error) {
		if d.pos < len(d.data) && d.data[d.pos] == '"' {
			s, err := d.str()
			return string(s), err
		}
		return "", d.mismatch("string")
	})
}

func (d *decoder) float64s(p unsafe.Pointer) error {
	return fastSlice(d, p, 8, true, func() (float64, error) { return d.floatValue(64) })
}

func (d *decoder) int64s(p unsafe.Pointer) error {
	return fastSlice(d, p, 8, true, func() (int64, error) { return d.intValue(64) })
}

func (d *decoder) anys(p unsafe.Pointer) error {
	return fastSlice(d, p, 4, false, d.anyValue)
}

// mapValue decodes a JSON object into map p of plan c.
func (d *decoder) mapValue(p unsafe.Pointer, c *codec) error {
	switch c.fast {
	case fastMapString:
		return d.mapString(p)
	case fastMapAny:
		m, err := d.mapAny()
		if err != nil {
			return err
		}
		*(*map[string]any)(p) = m
		return nil
	}
	mv := reflect.MakeMap(c.typ)
	empty, err := d.open('}')
	if err != nil {
		return err
	}
	if !empty {
		kv := reflect.New(c.typ.Key()).Elem()
		ev := reflect.New(c.elem.typ)
		ep := ev.UnsafePointer()
		ev = ev.Elem()
		for {
			k, err := d.key()
			if err != nil {
				return err
			}
			ks := string(k)
			ev.SetZero()
			if err := d.value(ep, c.elem, modeZeroed); err != nil {
				return withKey(err, ks)
			}
			kv.SetString(ks)
			mv.SetMapIndex(kv, ev)
			more, err := d.next('}')
			if err != nil {
				return err
			}
			if !more {
				break
			}
		}
		d.depth--
	}
	reflect.NewAt(c.typ, p).Elem().Set(mv)
	return nil
}

func (d *decoder) mapString(p unsafe.Pointer) error {
	m := map[string]string{}
	empty, err := d.open('}')
	if err != nil {
		return err
	}
	if !empty {
		for {
			k, err := d.key()
			if err != nil {
				return err
			}
			ks := string(k)
			switch {
			case d.pos < len(d.data) && d.data[d.pos] == '"':
				s, err := d.str()
				if err != nil {
					return withKey(err, ks)
				}
				m[ks] = string(s)
			case d.pos < len(d.data) && d.data[d.pos] == 'n':
				if err := d.literal("null"); err != nil {
					return withKey(err, ks)
				}
				m[ks] = ""
			default:
				return withKey(d.mismatch("string"), ks)
			}
			more, err := d.next('}')
			if err != nil {
				return err
			}
			if !more {
				break
			}
		}
		d.depth--
	}
	*(*map[string]string)(p) = m
	return nil
}

// mapAny decodes the JSON object at d.pos into a map[string]any.
func (d *decoder) mapAny() (map[string]any, error) {
	m := map[string]any{}
	empty, err := d.open('}')
	if err != nil || empty {
		return m, err
	}
	for {
		k, err := d.key()
		if err != nil {
			return nil, err
		}
		ks := string(k)
		v, err := d.anyValue()
		if err != nil {
			return nil, withKey(err, ks)
		}
		m[ks] = v
		more, err := d.next('}')
		if err != nil {
			return nil, err
		}
		if !more {
			d.depth--
			return m, nil
		}
	}
}

// anyValue decodes the JSON value at d.pos into the shapes encoding/json
// uses with UseNumber: map[string]any, []any, string, json.Number, bool or
// nil. NaN and the infinities are json.Number values too.
func (d *decoder) anyValue() (any, error) {
	d.skipWS()
	if d.pos >= len(d.data) {
		return nil, d.eof("value")
	}
	switch c := d.data[d.pos]; c {
	case '"':
		s, err := d.str()
		if err != nil {
			return nil, err
		}
		return string(s), nil
	case '{':
		return d.mapAny()
	case '[':
		var out []any
		empty, err := d.open(']')
		if err != nil {
			return nil, err
		}
		if empty {
			return []any{}, nil
		}
		if err := d.anys(unsafe.Pointer(&out)); err != nil {
			return nil, err
		}
		return out, nil
	case 't':
		return true, d.literal("true")
	case 'f':
		return false, d.literal("false")
	case 'n':
		return nil, d.literal("null")
	default:
		return d.numberValue()
	}
}

// numberValue reads a number, NaN, Infinity or -Infinity at d.pos as a
// json.Number holding its text, so that writing it again gives the same
// text: 1 stays 1, 1.0 stays 1.0 and big integers stay exact.
func (d *decoder) numberValue() (any, error) {
	start := d.pos
	if ok, _, err := d.nonFinite(); ok {
		if err != nil {
			return nil, err
		}
	} else {
		if c := d.data[d.pos]; c != '-' && (c < '0' || c > '9') {
			return nil, d.syntaxErr(d.pos, "invalid character %s looking for a value", quoteChar(d.data[d.pos:]))
		}
		if _, _, err := d.number(); err != nil {
			return nil, err
		}
	}
	return json.Number(d.data[start:d.pos]), nil
}

// floatValue reads a number, NaN, Infinity or -Infinity at d.pos.
func (d *decoder) floatValue(bits int) (float64, error) {
	if d.pos >= len(d.data) {
		return 0, d.eof("number")
	}
	if ok, sign, err := d.nonFinite(); ok {
		if err != nil {
			return 0, err
		}
		if sign == 0 {
			return math.NaN(), nil
		}
		return math.Inf(sign), nil
	}
	if c := d.data[d.pos]; c != '-' && (c < '0' || c > '9') {
		return 0, d.mismatch("number")
	}
	start := d.pos
	num, _, err := d.number()
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(num), len(num)), bits)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return f, nil // ±Inf for overflow, as Python reads it
		}
		return 0, d.syntaxErr(start, "invalid number %s", num)
	}
	return f, nil
}

// intValue reads an integer that fits in bits at d.pos. A number written
// with a fraction or exponent is accepted when its value is integral.
func (d *decoder) intValue(bits int) (int64, error) {
	neg, mag, start, num, err := d.integer()
	if err != nil {
		return 0, err
	}
	limit := uint64(1) << (bits - 1)
	if neg {
		if mag > limit {
			return 0, d.syntaxErr(start, "number %s overflows int%d", clip(num), bits)
		}
		return int64(-mag), nil
	}
	if mag >= limit {
		return 0, d.syntaxErr(start, "number %s overflows int%d", clip(num), bits)
	}
	return int64(mag), nil
}

// uintValue reads an unsigned integer that fits in bits at d.pos.
func (d *decoder) uintValue(bits int) (uint64, error) {
	neg, mag, start, num, err := d.integer()
	if err != nil {
		return 0, err
	}
	if (neg && mag != 0) || (bits < 64 && mag >= uint64(1)<<bits) {
		return 0, d.syntaxErr(start, "number %s overflows uint%d", clip(num), bits)
	}
	return mag, nil
}

// integer reads a number at d.pos that must be integral, returning its sign
// and magnitude, its offset and text.
func (d *decoder) integer() (neg bool, mag uint64, start int, num []byte, err error) {
	start = d.pos
	if d.pos >= len(d.data) {
		return false, 0, start, nil, d.eof("integer")
	}
	if c := d.data[d.pos]; (c != '-' && (c < '0' || c > '9')) ||
		(c == '-' && d.pos+1 < len(d.data) && d.data[d.pos+1] == 'I') {
		return false, 0, start, nil, d.mismatch("integer")
	}
	num, isInt, err := d.number()
	if err != nil {
		return false, 0, start, nil, err
	}
	neg = num[0] == '-'
	digits := num
	if neg {
		digits = num[1:]
	}
	if isInt && len(digits) <= 19 {
		for _, c := range digits {
			mag = mag*10 + uint64(c-'0')
		}
		return neg, mag, start, num, nil
	}
	mag, frac, over := parseIntegral(digits)
	switch {
	case frac:
		return false, 0, start, num, d.syntaxErr(start, "expected integer, got number %s with a fraction", clip(num))
	case over:
		return false, 0, start, num, d.syntaxErr(start, "number %s overflows a 64-bit integer", clip(num))
	}
	return neg, mag, start, num, nil
}

// parseIntegral reads the unsigned JSON number text s (digits, optional
// fraction and exponent) exactly. It reports whether the value has a
// fractional part, or does not fit in 64 bits.
func parseIntegral(s []byte) (mag uint64, frac, over bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	intPart := s[:i]
	var fracPart []byte
	if i < len(s) && s[i] == '.' {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		fracPart = s[i+1 : j]
		i = j
	}
	exp := 0
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		eneg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			eneg = s[i] == '-'
			i++
		}
		for ; i < len(s); i++ {
			if exp < 1<<20 {
				exp = exp*10 + int(s[i]-'0')
			}
		}
		if eneg {
			exp = -exp
		}
	}
	n := len(intPart) + len(fracPart)
	digit := func(k int) byte {
		if k < len(intPart) {
			return intPart[k]
		}
		return fracPart[k-len(intPart)]
	}
	scale := exp - len(fracPart)
	lo, hi := 0, n
	for lo < hi && digit(lo) == '0' {
		lo++
	}
	for hi > lo && digit(hi-1) == '0' {
		hi--
		scale++
	}
	if lo == hi {
		return 0, false, false
	}
	if scale < 0 {
		return 0, true, false
	}
	if hi-lo > 20 {
		return 0, false, true
	}
	for k := lo; k < hi; k++ {
		dg := uint64(digit(k) - '0')
		if mag > (math.MaxUint64-dg)/10 {
			return 0, false, true
		}
		mag = mag*10 + dg
	}
	for ; scale > 0; scale-- {
		if mag > math.MaxUint64/10 {
			return 0, false, true
		}
		mag *= 10
	}
	return mag, false, false
}

// clip shortens a long number for an error message.
func clip(num []byte) string {
	if len(num) > 40 {
		return string(num[:37]) + "..."
	}
	return string(num)
}
