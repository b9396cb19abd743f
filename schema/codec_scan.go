package schema

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// This file holds the JSON tokenizer used by the decoder: whitespace,
// strings, numbers, literals and skipping whole values. It accepts standard
// JSON plus the bare tokens NaN, Infinity and -Infinity that Python writes
// for non-finite floats.

// maxDepth bounds the nesting of arrays and objects, in input and output.
const maxDepth = 10000

// decoder is the state of one Unmarshal call.
type decoder struct {
	data    []byte
	pos     int
	depth   int
	scratch []byte // unescaped text of the last string with escapes
}

// Bit tricks on 8 bytes at a time: lsb has the low bit of every byte set,
// msb the high bit.
const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// special8 is non-zero when one of the 8 bytes of x is a control character,
// '"', '\\' or not ASCII: a byte a JSON string cannot simply copy.
func special8(x uint64) uint64 {
	ctl := (x - lsb*0x20) &^ x
	q := x ^ (lsb * '"')
	bs := x ^ (lsb * '\\')
	return (ctl | ((q - lsb) &^ q) | ((bs - lsb) &^ bs) | x) & msb
}

func (d *decoder) skipWS() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// syntaxErr returns a *DecodeError at offset off.
func (d *decoder) syntaxErr(off int, format string, args ...any) error {
	return &DecodeError{Msg: fmt.Sprintf(format, args...), Offset: off}
}

// eof is the error for input that ends where more was expected.
func (d *decoder) eof(expected string) error {
	if len(d.data) == 0 {
		return &DecodeError{Msg: "empty input", Offset: 0}
	}
	return &DecodeError{Msg: "unexpected end of input, expected " + expected, Offset: len(d.data)}
}

// found describes the token that starts at d.pos, for error messages.
func (d *decoder) found() string {
	if d.pos >= len(d.data) {
		return "end of input"
	}
	switch c := d.data[d.pos]; c {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	case 'N':
		return "NaN"
	case 'I':
		return "Infinity"
	case '-':
		if d.pos+1 < len(d.data) && d.data[d.pos+1] == 'I' {
			return "-Infinity"
		}
		return "number"
	case '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return "number"
	default:
		return "invalid character " + quoteChar(d.data[d.pos:])
	}
}

// quoteChar quotes the character at the start of b for an error message.
func quoteChar(b []byte) string {
	r, _ := utf8.DecodeRune(b)
	if r == utf8.RuneError {
		return fmt.Sprintf("byte 0x%02x", b[0])
	}
	return strconv.QuoteRune(r)
}

// mismatch is the error for a value of the wrong type at d.pos. When the
// value is not even valid JSON, the syntax error is reported instead.
func (d *decoder) mismatch(expected string) error {
	if d.pos >= len(d.data) {
		return d.eof(expected)
	}
	pos, depth := d.pos, d.depth
	if err := d.skip(); err != nil {
		return err
	}
	d.pos, d.depth = pos, depth
	return &DecodeError{Msg: "expected " + expected + ", got " + d.found(), Offset: d.pos}
}

// literal consumes lit (true, false, null, NaN, Infinity, -Infinity) at d.pos.
func (d *decoder) literal(lit string) error {
	end := d.pos + len(lit)
	if end <= len(d.data) && string(d.data[d.pos:end]) == lit {
		d.pos = end
		return nil
	}
	for i := 0; i < len(lit); i++ {
		if d.pos+i >= len(d.data) {
			return d.eof(strconv.Quote(lit))
		}
		if d.data[d.pos+i] != lit[i] {
			return d.syntaxErr(d.pos+i, "invalid character %s in literal %s", quoteChar(d.data[d.pos+i:]), lit)
		}
	}
	return d.eof(strconv.Quote(lit)) // not reached
}

// str reads the JSON string at d.pos (which is '"') and returns its text.
// The result aliases the input when the string has no escapes, else it is
// d.scratch; either way it is valid only until the next call. Raw bytes
// that are not valid UTF-8 are an error; an escaped lone surrogate
// (\ud800) becomes its WTF-8 form, which appendString writes back as the
// same escape.
func (d *decoder) str() ([]byte, error) { return d.strAs(false) }

// strRaw reads a string like str for a Bytes field, which keeps raw bytes
// that are not valid UTF-8 as they are.
func (d *decoder) strRaw() ([]byte, error) { return d.strAs(true) }

func (d *decoder) strAs(raw bool) ([]byte, error) {
	data := d.data
	start := d.pos + 1
	i := start
	ascii := true
	for {
		for i+8 <= len(data) && special8(binary.LittleEndian.Uint64(data[i:])) == 0 {
			i += 8
		}
		if i >= len(data) {
			return nil, d.syntaxErr(len(data), "unexpected end of input in string starting at offset %d", start-1)
		}
		c := data[i]
		switch {
		case c == '"':
			s := data[start:i]
			if !ascii && !raw && !utf8.Valid(s) {
				return nil, d.badUTF8(start, s)
			}
			d.pos = i + 1
			return s, nil
		case c == '\\':
			return d.strSlow(start, i, raw)
		case c < 0x20:
			return nil, d.syntaxErr(i, "invalid control character 0x%02x in string", c)
		case c >= utf8.RuneSelf:
			ascii = false
		}
		i++
	}
}

// badUTF8 is the error for the string bytes s, found at offset off, which
// are not valid UTF-8. Python's side rejects such a payload as a whole.
func (d *decoder) badUTF8(off int, s []byte) error {
	i := invalidUTF8At(s)
	if i < 0 {
		i = 0
	}
	return d.syntaxErr(off+i, "invalid UTF-8 in string (byte 0x%02x)", s[i])
}

// strSlow finishes a string that has escapes: start is the offset of its
// first byte, i of the first backslash. raw is as for strAs.
func (d *decoder) strSlow(start, i int, raw bool) ([]byte, error) {
	data := d.data
	if !raw && !utf8.Valid(data[start:i]) {
		return nil, d.badUTF8(start, data[start:i])
	}
	buf := append(d.scratch[:0], data[start:i]...)
	for {
		// Copy a run of plain bytes. Runs end at ASCII bytes, so a UTF-8
		// sequence is never split between two of them.
		j := i
		for j+8 <= len(data) && special8(binary.LittleEndian.Uint64(data[j:])) == 0 {
			j += 8
		}
		for j < len(data) {
			c := data[j]
			if c == '"' || c == '\\' || c < 0x20 {
				break
			}
			j++
		}
		if !raw && !utf8.Valid(data[i:j]) {
			d.scratch = buf
			return nil, d.badUTF8(i, data[i:j])
		}
		buf = append(buf, data[i:j]...)
		i = j
		if i >= len(data) {
			d.scratch = buf
			return nil, d.syntaxErr(len(data), "unexpected end of input in string starting at offset %d", start-1)
		}
		switch c := data[i]; {
		case c == '"':
			d.pos = i + 1
			d.scratch = buf
			return buf, nil
		case c < 0x20:
			d.scratch = buf
			return nil, d.syntaxErr(i, "invalid control character 0x%02x in string", c)
		}
		// A backslash.
		if i+1 >= len(data) {
			d.scratch = buf
			return nil, d.syntaxErr(len(data), "unexpected end of input in string starting at offset %d", start-1)
		}
		switch e := data[i+1]; e {
		case '"', '\\', '/':
			buf = append(buf, e)
			i += 2
		case 'b':
			buf = append(buf, '\b')
			i += 2
		case 'f':
			buf = append(buf, '\f')
			i += 2
		case 'n':
			buf = append(buf, '\n')
			i += 2
		case 'r':
			buf = append(buf, '\r')
			i += 2
		case 't':
			buf = append(buf, '\t')
			i += 2
		case 'u':
			r, ok := hex4(data, i+2)
			if !ok {
				d.scratch = buf
				return nil, d.syntaxErr(i, "invalid \\u escape in string")
			}
			i += 6
			if r >= 0xD800 && r < 0xDC00 && i+1 < len(data) && data[i] == '\\' && data[i+1] == 'u' {
				// A high surrogate: combine it with a following low one.
				if r2, ok := hex4(data, i+2); ok && r2 >= 0xDC00 && r2 < 0xE000 {
					r = 0x10000 + (r-0xD800)<<10 + (r2 - 0xDC00)
					i += 6
				}
			}
			if r >= 0xD800 && r < 0xE000 {
				// A lone surrogate, which Python keeps in its str: hold it
				// in the generalized UTF-8 (WTF-8) form.
				buf = appendSurrogate(buf, r)
			} else {
				buf = utf8.AppendRune(buf, r)
			}
		default:
			d.scratch = buf
			return nil, d.syntaxErr(i, "invalid escape %s in string", strconv.Quote(`\`+string(rune(e))))
		}
	}
}

// appendSurrogate appends the surrogate code point r (U+D800 to U+DFFF) in
// the three-byte form UTF-8 would give it if it allowed surrogates (WTF-8):
// ED A0 80 to ED BF BF.
func appendSurrogate(dst []byte, r rune) []byte {
	return append(dst, 0xED, 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F)
}

// surrogateAt returns the surrogate code point whose WTF-8 form starts
// b[i:], or 0.
func surrogateAt(b []byte, i int) rune {
	if i+2 < len(b) && b[i] == 0xED && b[i+1]&0xE0 == 0xA0 && b[i+2]&0xC0 == 0x80 {
		return 0xD000 | rune(b[i+1]&0x3F)<<6 | rune(b[i+2]&0x3F)
	}
	return 0
}

// hex4 reads 4 hex digits at data[i:].
func hex4(data []byte, i int) (rune, bool) {
	if i+4 > len(data) {
		return 0, false
	}
	var r rune
	for _, c := range data[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// skipString moves past the JSON string at d.pos, checking its syntax.
func (d *decoder) skipString() error {
	data := d.data
	start := d.pos
	i := start + 1
	for {
		for i+8 <= len(data) && special8(binary.LittleEndian.Uint64(data[i:])) == 0 {
			i += 8
		}
		if i >= len(data) {
			return d.syntaxErr(len(data), "unexpected end of input in string starting at offset %d", start)
		}
		switch c := data[i]; {
		case c == '"':
			d.pos = i + 1
			return nil
		case c == '\\':
			if i+1 >= len(data) {
				return d.syntaxErr(len(data), "unexpected end of input in string starting at offset %d", start)
			}
			switch e := data[i+1]; e {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if _, ok := hex4(data, i+2); !ok {
					return d.syntaxErr(i, "invalid \\u escape in string")
				}
				i += 6
			default:
				return d.syntaxErr(i, "invalid escape %s in string", strconv.Quote(`\`+string(rune(e))))
			}
		case c < 0x20:
			return d.syntaxErr(i, "invalid control character 0x%02x in string", c)
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				return d.syntaxErr(i, "invalid UTF-8 in string (byte 0x%02x)", c)
			}
			i += size
		}
	}
}

// number scans the JSON number at d.pos and returns its text, and whether it
// is written as a plain integer (no fraction, no exponent). It does not
// accept NaN or Infinity; callers that do check for them first.
func (d *decoder) number() ([]byte, bool, error) {
	data := d.data
	start := d.pos
	i := start
	if i < len(data) && data[i] == '-' {
		i++
	}
	switch {
	case i >= len(data):
		return nil, false, d.eof("digit")
	case data[i] == '0':
		i++
	case data[i] >= '1' && data[i] <= '9':
		i++
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	default:
		return nil, false, d.syntaxErr(i, "invalid character %s in number", quoteChar(data[i:]))
	}
	isInt := true
	if i < len(data) && data[i] == '.' {
		isInt = false
		i++
		if i >= len(data) {
			return nil, false, d.eof("digit")
		}
		if data[i] < '0' || data[i] > '9' {
			return nil, false, d.syntaxErr(i, "invalid character %s after decimal point in number", quoteChar(data[i:]))
		}
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		isInt = false
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) {
			return nil, false, d.eof("digit")
		}
		if data[i] < '0' || data[i] > '9' {
			return nil, false, d.syntaxErr(i, "invalid character %s in exponent of number", quoteChar(data[i:]))
		}
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	}
	d.pos = i
	return data[start:i], isInt, nil
}

// nonFinite consumes NaN, Infinity or -Infinity at d.pos if one is there.
// It reports whether it did, the value's sign (-1, 0 for NaN, +1), and a
// syntax error for a malformed token.
func (d *decoder) nonFinite() (bool, int, error) {
	if d.pos >= len(d.data) {
		return false, 0, nil
	}
	switch d.data[d.pos] {
	case 'N':
		return true, 0, d.literal("NaN")
	case 'I':
		return true, 1, d.literal("Infinity")
	case '-':
		if d.pos+1 < len(d.data) && d.data[d.pos+1] == 'I' {
			return true, -1, d.literal("-Infinity")
		}
	}
	return false, 0, nil
}

// skip moves past the JSON value at d.pos, checking its syntax.
func (d *decoder) skip() error {
	d.skipWS()
	if d.pos >= len(d.data) {
		return d.eof("value")
	}
	switch c := d.data[d.pos]; c {
	case '"':
		return d.skipString()
	case '{':
		if d.depth++; d.depth > maxDepth {
			return d.syntaxErr(d.pos, "nesting deeper than %d levels", maxDepth)
		}
		d.pos++
		d.skipWS()
		if d.pos < len(d.data) && d.data[d.pos] == '}' {
			d.pos++
			d.depth--
			return nil
		}
		for {
			if d.pos >= len(d.data) || d.data[d.pos] != '"' {
				return d.keyErr()
			}
			keyAt := d.pos
			if err := d.skipString(); err != nil {
				return err
			}
			if err := d.colon(); err != nil {
				return err
			}
			if err := d.skip(); err != nil {
				return withField(err, d.keyAt(keyAt))
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
	case '[':
		if d.depth++; d.depth > maxDepth {
			return d.syntaxErr(d.pos, "nesting deeper than %d levels", maxDepth)
		}
		d.pos++
		d.skipWS()
		if d.pos < len(d.data) && d.data[d.pos] == ']' {
			d.pos++
			d.depth--
			return nil
		}
		for i := 0; ; i++ {
			if err := d.skip(); err != nil {
				return withIndex(err, i)
			}
			more, err := d.next(']')
			if err != nil {
				return err
			}
			if !more {
				d.depth--
				return nil
			}
		}
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case 'n':
		return d.literal("null")
	default:
		if ok, _, err := d.nonFinite(); ok {
			return err
		}
		if c == '-' || (c >= '0' && c <= '9') {
			_, _, err := d.number()
			return err
		}
		return d.syntaxErr(d.pos, "invalid character %s looking for a value", quoteChar(d.data[d.pos:]))
	}
}

// keyAt returns the text of the object key that starts at offset at, for
// an error path.
func (d *decoder) keyAt(at int) string {
	kd := decoder{data: d.data, pos: at}
	k, err := kd.str()
	if err != nil {
		return ""
	}
	return string(k)
}

// keyErr is the error for something other than a string where an object
// key belongs.
func (d *decoder) keyErr() error {
	if d.pos >= len(d.data) {
		return d.eof("object key string")
	}
	return d.syntaxErr(d.pos, "expected object key string, got %s", d.found())
}

// colon consumes the ':' after an object key and the whitespace around it.
func (d *decoder) colon() error {
	d.skipWS()
	if d.pos >= len(d.data) {
		return d.eof("':' after object key")
	}
	if d.data[d.pos] != ':' {
		return d.syntaxErr(d.pos, "expected ':' after object key, got %s", d.found())
	}
	d.pos++
	d.skipWS()
	return nil
}

// next consumes the ',' or closing bracket after an array element or object
// member, with the whitespace around it. It reports whether another element
// follows.
func (d *decoder) next(closing byte) (bool, error) {
	d.skipWS()
	if d.pos >= len(d.data) {
		return false, d.eof(fmt.Sprintf("',' or '%c'", closing))
	}
	switch d.data[d.pos] {
	case ',':
		d.pos++
		d.skipWS()
		if closing == '}' && (d.pos >= len(d.data) || d.data[d.pos] != '"') {
			return false, d.keyErr()
		}
		return true, nil
	case closing:
		d.pos++
		return false, nil
	}
	what := "array element"
	if closing == '}' {
		what = "object member"
	}
	return false, d.syntaxErr(d.pos, "expected ',' or '%c' after %s, got %s", closing, what, d.found())
}
