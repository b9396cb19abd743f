package schema

import (
	"encoding"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unsafe"
)

// A codec is the plan for one Go type: how to encode and decode it without
// looking at reflect for every value. Plans are built once per type, cached
// in planCache, and never changed after they are published.
type codec struct {
	kind kind
	fast fastPath
	bits int // size in bits of an int, uint or float
	typ  reflect.Type
	size uintptr
	elem *codec // pointee, list element or map value

	// kCustom only.
	hooks *hooks

	// Structs only.
	fields   []field
	byName   map[string]int
	defs     []defaultAt // every default to set, nested value structs included
	defsDone bool
}

type kind uint8

const (
	kInvalid kind = iota
	kBool
	kInt
	kUint
	kFloat
	kString
	kBytes  // Bytes or any []byte: a JSON string of UTF-8 text
	kRaw    // json.RawMessage: any JSON value, kept as it is
	kNumber // json.Number: a JSON number kept as text
	kAny    // an empty interface: the usual encoding/json shapes
	kPtr
	kSlice
	kMap // map with a string key
	kStruct
	kCustom // a type with its own JSON or text methods (time.Time, ...)
)

// hook says which method a custom type uses in one direction.
type hook uint8

const (
	hookNone hook = iota
	hookJSON      // MarshalJSON / UnmarshalJSON
	hookText      // MarshalText / UnmarshalText, as a JSON string
)

// hooks is the part of a plan for a type with its own JSON or text methods.
// A direction without a method uses the plan of the type's own kind
// (fallback), as encoding/json does; when that kind is not supported either,
// fallback is nil and fallbackErr says why.
type hooks struct {
	enc, dec    hook
	fallback    *codec
	fallbackErr *TypeError
}

// fastPath marks common types that have a hand-written path.
type fastPath uint8

const (
	fastNone      fastPath = iota
	fastStrings            // []string
	fastFloat64s           // []float64
	fastInt64s             // []int64
	fastAnys               // []any
	fastMapString          // map[string]string
	fastMapAny             // map[string]any
)

// field is one JSON field of a struct plan.
type field struct {
	name   string // JSON name
	goName string
	key    []byte // `"name":`, escaped
	offset uintptr
	c      *codec
	def    *defaultValue // nil without a default tag
}

// defaultValue is a parsed `default` tag.
type defaultValue struct {
	b bool
	i int64
	u uint64
	f float64
	s string
}

// defaultAt is one default to set at an offset of a struct.
type defaultAt struct {
	off uintptr
	c   *codec
	v   *defaultValue
}

// sliceHeader is the memory layout of every Go slice.
type sliceHeader struct {
	data unsafe.Pointer
	len  int
	cap  int
}

var (
	rtRawMessage = reflect.TypeFor[json.RawMessage]()
	rtNumber     = reflect.TypeFor[json.Number]()
	rtString     = reflect.TypeFor[string]()
	rtFloat64    = reflect.TypeFor[float64]()
	rtInt64      = reflect.TypeFor[int64]()
	rtAny        = reflect.TypeFor[any]()
	rtBytes      = reflect.TypeFor[Bytes]()

	rtJSONMarshaler   = reflect.TypeFor[json.Marshaler]()
	rtJSONUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	rtTextMarshaler   = reflect.TypeFor[encoding.TextMarshaler]()
	rtTextUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// hooksFor returns the JSON and text methods of t, or nil when it has none
// the codec uses. Methods of *T count, since the codec always holds values
// by address. Bytes and json.RawMessage have JSON methods that do what
// their plans do, so their plans are used.
func hooksFor(t reflect.Type) *hooks {
	switch {
	case t.Kind() == reflect.Pointer, t.Kind() == reflect.Interface, t == rtRawMessage, t == rtBytes:
		return nil
	}
	pt := reflect.PointerTo(t)
	h := &hooks{}
	switch {
	case pt.Implements(rtJSONMarshaler):
		h.enc = hookJSON
	case pt.Implements(rtTextMarshaler):
		h.enc = hookText
	}
	switch {
	case pt.Implements(rtJSONUnmarshaler):
		h.dec = hookJSON
	case pt.Implements(rtTextUnmarshaler):
		h.dec = hookText
	}
	if h.enc == hookNone && h.dec == hookNone {
		return nil
	}
	return h
}

type planEntry struct {
	c   *codec
	err error
}

var (
	planCache sync.Map // reflect.Type -> *planEntry
	planMu    sync.Mutex
)

// planFor returns the plan for t, building and caching it on first use.
func planFor(t reflect.Type) (*codec, error) {
	if v, ok := planCache.Load(t); ok {
		e := v.(*planEntry)
		return e.c, e.err
	}
	planMu.Lock()
	defer planMu.Unlock()
	if v, ok := planCache.Load(t); ok {
		e := v.(*planEntry)
		return e.c, e.err
	}
	b := builder{built: map[reflect.Type]*codec{}}
	c, err := b.build(t)
	if err != nil {
		if te, ok := err.(*TypeError); ok && te.Path != "" {
			cp := *te
			cp.Root = t
			err = &cp
		}
		planCache.Store(t, &planEntry{err: err})
		return nil, err
	}
	for _, bc := range b.order {
		if bc.kind == kStruct {
			bc.computeDefaults()
		}
	}
	for typ, bc := range b.built {
		planCache.Store(typ, &planEntry{c: bc})
	}
	return c, nil
}

// builder builds the plans of one type and the types it reaches. Types that
// refer to themselves through pointers, slices or maps get the plan that is
// still being built, which is complete by the time anything uses it.
type builder struct {
	built map[reflect.Type]*codec
	order []*codec
}

func (b *builder) build(t reflect.Type) (*codec, error) {
	if v, ok := planCache.Load(t); ok {
		e := v.(*planEntry)
		return e.c, e.err
	}
	if c, ok := b.built[t]; ok {
		return c, nil
	}
	c := &codec{typ: t, size: t.Size()}
	b.built[t] = c
	b.order = append(b.order, c)
	if h := hooksFor(t); h != nil {
		c.kind, c.hooks = kCustom, h
		if h.enc == hookNone || h.dec == hookNone {
			fb := &codec{typ: t, size: t.Size()}
			if err := b.buildKind(fb, t); err != nil {
				te, ok := err.(*TypeError)
				if !ok {
					return nil, err
				}
				h.fallbackErr = te
			} else {
				b.order = append(b.order, fb)
				h.fallback = fb
			}
		}
		return c, nil
	}
	if err := b.buildKind(c, t); err != nil {
		return nil, err
	}
	return c, nil
}

// buildKind fills in plan c for type t by its kind.
func (b *builder) buildKind(c *codec, t reflect.Type) error {
	var err error
	switch t.Kind() {
	case reflect.Bool:
		c.kind = kBool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		c.kind, c.bits = kInt, t.Bits()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		c.kind, c.bits = kUint, t.Bits()
	case reflect.Float32, reflect.Float64:
		c.kind, c.bits = kFloat, t.Bits()
	case reflect.String:
		c.kind = kString
		if t == rtNumber {
			c.kind = kNumber
		}
	case reflect.Interface:
		if t.NumMethod() != 0 {
			return &TypeError{Type: t, Msg: "interfaces with methods are not supported; use any"}
		}
		c.kind = kAny
	case reflect.Pointer:
		c.kind = kPtr
		c.elem, err = b.build(t.Elem())
	case reflect.Slice:
		switch {
		case t == rtRawMessage:
			c.kind = kRaw
		case t.Elem().Kind() == reflect.Uint8:
			c.kind = kBytes
		default:
			c.kind = kSlice
			switch t.Elem() {
			case rtString:
				c.fast = fastStrings
			case rtFloat64:
				c.fast = fastFloat64s
			case rtInt64:
				c.fast = fastInt64s
			case rtAny:
				c.fast = fastAnys
			}
			c.elem, err = b.build(t.Elem())
		}
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return &TypeError{Type: t, Msg: "map keys must be strings"}
		}
		c.kind = kMap
		if t.Key() == rtString {
			switch t.Elem() {
			case rtString:
				c.fast = fastMapString
			case rtAny:
				c.fast = fastMapAny
			}
		}
		c.elem, err = b.build(t.Elem())
	case reflect.Struct:
		c.kind = kStruct
		err = b.buildStruct(c, t)
	default:
		return &TypeError{Type: t, Msg: "kind " + t.Kind().String() + " is not supported"}
	}
	if err != nil && (c.kind == kSlice || c.kind == kMap) {
		if te, ok := err.(*TypeError); ok {
			err = te.within("[]")
		}
	}
	return err
}

// candidate is a struct field found while flattening embedded structs.
type candidate struct {
	f      field
	depth  int
	tagged bool
}

func (b *builder) buildStruct(c *codec, t reflect.Type) error {
	var cands []candidate
	if err := b.collect(t, 0, 0, &cands); err != nil {
		return err
	}
	// Resolve names the way encoding/json does: the shallowest field wins,
	// then a tagged one; a tie that is left is an error here.
	best := map[string]int{}
	drop := make([]bool, len(cands))
	for i, cd := range cands {
		j, seen := best[cd.f.name]
		if !seen {
			best[cd.f.name] = i
			continue
		}
		old := cands[j]
		switch {
		case cd.depth < old.depth || (cd.depth == old.depth && cd.tagged && !old.tagged):
			drop[j] = true
			best[cd.f.name] = i
		case cd.depth > old.depth || (cd.depth == old.depth && old.tagged && !cd.tagged):
			drop[i] = true
		default:
			return &TypeError{Type: t, Field: cd.f.goName, Path: cd.f.goName,
				Msg: fmt.Sprintf("JSON name %q is also used by field %s", cd.f.name, old.f.goName)}
		}
	}
	c.byName = make(map[string]int, len(cands))
	for i, cd := range cands {
		if drop[i] {
			continue
		}
		c.byName[cd.f.name] = len(c.fields)
		c.fields = append(c.fields, cd.f)
	}
	return nil
}

// collect appends the JSON fields of struct t, found at offset base, to out.
func (b *builder) collect(t reflect.Type, base uintptr, depth int, out *[]candidate) error {
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag, tagged := sf.Tag.Lookup("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if sf.Anonymous && name == "" {
			ft := sf.Type
			if ft.Kind() == reflect.Struct && hooksFor(ft) == nil {
				if err := b.collect(ft, base+sf.Offset, depth+1, out); err != nil {
					if te, ok := err.(*TypeError); ok {
						err = te.within(sf.Name)
					}
					return err
				}
				continue
			}
			if ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct {
				return &TypeError{Type: t, Field: sf.Name, Path: sf.Name,
					Msg: "embedded pointers to structs are not supported; give the field a name"}
			}
		}
		if !sf.IsExported() {
			continue
		}
		for opts != "" {
			var opt string
			opt, opts, _ = strings.Cut(opts, ",")
			if opt == "string" {
				return &TypeError{Type: t, Field: sf.Name, Path: sf.Name, Msg: "the json tag option \"string\" is not supported"}
			}
		}
		if name == "" {
			name = sf.Name
			tagged = false
		}
		fc, err := b.build(sf.Type)
		if err != nil {
			if te, ok := err.(*TypeError); ok {
				return te.inField(t, sf.Name)
			}
			return err
		}
		f := field{
			name:   name,
			goName: sf.Name,
			key:    append(appendString(nil, name), ':'),
			offset: base + sf.Offset,
			c:      fc,
		}
		if dv, ok := sf.Tag.Lookup("default"); ok {
			v, msg := parseDefault(sf.Type, dv)
			if msg == "" && (fc.kind == kCustom || fc.kind == kPtr && fc.elem.kind == kCustom) {
				msg = "defaults are not supported on " + sf.Type.String() + ", which has its own JSON or text methods"
			}
			if msg != "" {
				return &TypeError{Type: t, Field: sf.Name, Path: sf.Name, Msg: fmt.Sprintf("bad default tag %q: %s", dv, msg)}
			}
			f.def = v
		}
		*out = append(*out, candidate{f: f, depth: depth, tagged: tagged})
	}
	return nil
}

// parseDefault parses the `default` tag s for a field of type t (a scalar
// or a pointer to one). It returns a message saying what is wrong, or "".
func parseDefault(t reflect.Type, s string) (*defaultValue, string) {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	v := &defaultValue{}
	var err error
	switch t.Kind() {
	case reflect.Bool:
		switch s {
		case "true":
			v.b = true
		case "false":
		default:
			return nil, "want true or false for " + t.String()
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.i, err = strconv.ParseInt(s, 10, t.Bits())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		v.u, err = strconv.ParseUint(s, 10, t.Bits())
	case reflect.Float32, reflect.Float64:
		v.f, err = strconv.ParseFloat(s, t.Bits())
		if err == nil && t.Bits() == 32 && !math.IsInf(v.f, 0) && math.IsInf(float64(float32(v.f)), 0) {
			return nil, "out of range for " + t.String()
		}
	case reflect.String:
		if t == rtNumber {
			return nil, "defaults are not supported on " + t.String()
		}
		v.s = s
	case reflect.Slice:
		if t.Elem().Kind() != reflect.Uint8 || t == rtRawMessage {
			return nil, "defaults are not supported on " + t.String()
		}
		v.s = s
	default:
		return nil, "defaults are not supported on " + t.String()
	}
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok {
			err = ne.Err
		}
		return nil, "not a valid " + t.String() + " (" + err.Error() + ")"
	}
	return v, ""
}

// computeDefaults fills c.defs with every default of struct c, the defaults
// of nested (non-pointer) structs included at their offsets. Value nesting
// cannot be cyclic, so the recursion ends.
func (c *codec) computeDefaults() {
	if c.defsDone {
		return
	}
	var defs []defaultAt
	for i := range c.fields {
		f := &c.fields[i]
		if f.def != nil {
			defs = append(defs, defaultAt{off: f.offset, c: f.c, v: f.def})
		}
		if f.c.kind == kStruct {
			f.c.computeDefaults()
			for _, d := range f.c.defs {
				d.off += f.offset
				defs = append(defs, d)
			}
		}
	}
	c.defs = defs
	c.defsDone = true
}

// reset sets the value at p to its declared defaults: zero, then the
// defaults of a struct.
func (c *codec) reset(p unsafe.Pointer) {
	reflect.NewAt(c.typ, p).Elem().SetZero()
	c.applyDefaults(p)
}

// applyDefaults sets the declared defaults of a struct at p, which must be
// zero.
func (c *codec) applyDefaults(p unsafe.Pointer) {
	for i := range c.defs {
		d := &c.defs[i]
		setDefault(unsafe.Add(p, d.off), d.c, d.v)
	}
}

// setDefault stores the default v at p, a value of plan c.
func setDefault(p unsafe.Pointer, c *codec, v *defaultValue) {
	switch c.kind {
	case kPtr:
		np := reflect.New(c.elem.typ).UnsafePointer()
		setDefault(np, c.elem, v)
		*(*unsafe.Pointer)(p) = np
	case kBool:
		*(*bool)(p) = v.b
	case kInt:
		storeInt(p, c.bits, v.i)
	case kUint:
		storeUint(p, c.bits, v.u)
	case kFloat:
		storeFloat(p, c.bits, v.f)
	case kString:
		*(*string)(p) = v.s
	case kBytes:
		if v.s == "" {
			*(*[]byte)(p) = nil
		} else {
			*(*[]byte)(p) = []byte(v.s)
		}
	}
}

// zero sets the value at p of plan c to its zero value, or for a struct to
// its declared defaults.
func zero(p unsafe.Pointer, c *codec) {
	switch c.kind {
	case kBool:
		*(*bool)(p) = false
	case kInt:
		storeInt(p, c.bits, 0)
	case kUint:
		storeUint(p, c.bits, 0)
	case kFloat:
		storeFloat(p, c.bits, 0)
	case kString, kNumber:
		*(*string)(p) = ""
	case kBytes, kRaw:
		*(*[]byte)(p) = nil
	case kAny:
		*(*any)(p) = nil
	case kPtr, kMap:
		*(*unsafe.Pointer)(p) = nil
	case kSlice:
		*(*sliceHeader)(p) = sliceHeader{}
	case kStruct:
		c.reset(p)
	case kCustom:
		reflect.NewAt(c.typ, p).Elem().SetZero()
	}
}

func storeInt(p unsafe.Pointer, bits int, v int64) {
	switch bits {
	case 8:
		*(*int8)(p) = int8(v)
	case 16:
		*(*int16)(p) = int16(v)
	case 32:
		*(*int32)(p) = int32(v)
	default:
		*(*int64)(p) = v
	}
}

func loadInt(p unsafe.Pointer, bits int) int64 {
	switch bits {
	case 8:
		return int64(*(*int8)(p))
	case 16:
		return int64(*(*int16)(p))
	case 32:
		return int64(*(*int32)(p))
	default:
		return *(*int64)(p)
	}
}

func storeUint(p unsafe.Pointer, bits int, v uint64) {
	switch bits {
	case 8:
		*(*uint8)(p) = uint8(v)
	case 16:
		*(*uint16)(p) = uint16(v)
	case 32:
		*(*uint32)(p) = uint32(v)
	default:
		*(*uint64)(p) = v
	}
}

func loadUint(p unsafe.Pointer, bits int) uint64 {
	switch bits {
	case 8:
		return uint64(*(*uint8)(p))
	case 16:
		return uint64(*(*uint16)(p))
	case 32:
		return uint64(*(*uint32)(p))
	default:
		return *(*uint64)(p)
	}
}

func storeFloat(p unsafe.Pointer, bits int, v float64) {
	if bits == 32 {
		*(*float32)(p) = float32(v)
		return
	}
	*(*float64)(p) = v
}
