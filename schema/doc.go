// Package schema holds what every switchyard processor shares about
// messages: queue names, the JSON wire codec, and the message types of the
// pipeline.
//
// # Queue names
//
// Topic is a broker-neutral queue name of the form
// {qos}/{tenant}/{namespace}/{queue}, e.g. q1/tg/flow/text-completion-request.
// ParseTopic also reads TrustGraph's class form (flow:tg:queue) and raw Pulsar
// URIs. Backends map a Topic to their own names.
//
// # Message types
//
// The message types mirror the Python dataclasses of TrustGraph's
// trustgraph.schema package field for field, so that Go and Python
// processors can share queues: TextCompletionRequest and
// TextCompletionResponse, PromptRequest, Triple and Term, Metadata, and so
// on. A streamed reply is several messages; the last one has its
// `end_of_stream` (or `is_final`) field set.
//
// Build messages with their New<Type> constructor where there is one
// (NewTriplesQueryResponse, NewTextCompletionRequest, ...): it sets the
// fields whose Python default is not Go's zero value. A struct literal such
// as TriplesQueryResponse{Triples: ts} sends is_final=false where Python's
// default is true, and TrustGraph's query_stream then waits for more. The
// constructors are generated from the `default` tags (go generate).
//
// SetFinal and IsFinal set and read a reply's stream terminator whatever
// its type (end_of_stream, end_of_dialog, end_of_session, is_final or eos,
// see FinalFlag), and SetError its `error` field; code that answers on a
// handler's behalf uses them.
//
// # Wire format
//
// A message travels as UTF-8 JSON. Marshal and Unmarshal follow the rules
// that Python's side follows, which are not quite encoding/json's:
//
//   - A field's JSON name is the name in its `json:"..."` tag, which must be
//     the Python field name (snake_case). A field without a json tag uses
//     its Go name; `json:"-"` skips it. Embedded structs are flattened. Key
//     matching is exact (case-sensitive).
//   - Python `T | None` fields are Go pointers. A nil pointer is left out of
//     the output; a set pointer is written even when it points to an empty
//     value (`""`, `0`, `false`, `[]`, `{}`). The one exception is a pointer
//     field with a `default` tag (Python `str | None = ""`): nil is written
//     as null there, since a missing key would read back as the default.
//   - Every other field is always written; `omitempty` is ignored. A nil
//     slice is written as `[]` and a nil map as `{}`, as Python always has a
//     list or dict there.
//   - A field's Python default, when it is not Go's zero value, is declared
//     once in a `default:"..."` tag. The tag is parsed for the field's kind:
//     bool ("true", "false"), integers, floats, strings, Bytes, or a pointer
//     to one of these (the pointer is then set to the default when the key
//     is missing, but null still gives nil). A tag that does not parse is a
//     *TypeError from Marshal, Unmarshal, Defaults and CheckType, naming the
//     type and field.
//   - Decoding starts from the declared defaults (see Defaults): a missing
//     key keeps the default, and so does a key whose value is null (a null
//     pointer field is nil). Unknown keys are ignored, whatever they hold.
//     Duplicate keys: the last one wins.
//   - Floats may be NaN, Infinity or -Infinity; they travel as those bare
//     tokens, as Python's json writes and reads them. Other floats are
//     written in the shortest form that reads back to the same value.
//   - An integer field accepts a number with a fraction or exponent only
//     when its value is integral (3.0, 1e3); anything else, or a value out of
//     range, is an error.
//   - Bytes (and any []byte) travels as a JSON string holding the UTF-8
//     text of the bytes, not base64, because that is how Python puts `bytes`
//     on the bus. Encoding bytes that are not valid UTF-8 is an error (the
//     WTF-8 form of a lone surrogate, see below, is written as its escape).
//   - `any`, `map[string]any` and `[]any` fields (Python `dict`, `list`)
//     decode to the shapes encoding/json uses with UseNumber:
//     map[string]any, []any, string, bool, nil, and json.Number for every
//     number (NaN and the infinities too). A json.Number is written as its
//     text, so a number read is written back exactly as it came: 1 stays 1
//     (a Python int), 1.0 stays 1.0 (a float), and 2**53+1 or 2**70 stay
//     exact. Encoding a json.Number checks that it is a JSON number. Go
//     values put into an any keep their own rules: integers are written as
//     integers, floats as Python writes floats (3.0, not 3).
//     json.RawMessage keeps the raw text of a value. Map keys are written
//     in sorted order.
//   - Strings are escaped as JSON requires; <, > and & are not escaped.
//   - Input must be UTF-8, as Python's side requires: raw bytes in a
//     string that are not valid UTF-8 (including ED A0 80, the UTF-8-like
//     form of a surrogate) are a *DecodeError naming the field path and the
//     offset of the bad byte, wherever the string is, unknown keys and
//     json.RawMessage included. Bytes and []byte fields are the exception:
//     they take any bytes as they are (Marshal still refuses to send bytes
//     that are not UTF-8).
//   - Lone surrogates: Python's json keeps an unpaired escape such as
//     "\ud800" in its str and writes it back the same. The decoder stores
//     it in the Go string in its WTF-8 form (ED A0 80 for U+D800), and the
//     encoder writes that form back as the \uXXXX escape. A high surrogate
//     escape followed by a low one is the code point they stand for. Other
//     invalid UTF-8 in a Go string is written as U+FFFD (as in
//     encoding/json).
//   - Types with their own methods are encoded and decoded through them, as
//     encoding/json does: json.Marshaler and json.Unmarshaler first, then
//     encoding.TextMarshaler and encoding.TextUnmarshaler (the text travels
//     as a JSON string). time.Time thus travels as its RFC 3339 string.
//     MarshalJSON must return one valid JSON value. A null, or a missing
//     key, gives the zero value without calling the method. Such fields
//     take no `default` tag. A type with a method for one direction only
//     uses its kind for the other, and CheckType rejects it when its kind
//     cannot be handled. Bytes and json.RawMessage use the codec's own
//     rules, which their methods repeat.
//   - Errors name the field path and what was wrong, e.g.
//     `triples[3].s.iri: expected string, got number (offset 57)`, with map
//     keys as `terms["k"]`. Decoding errors are *DecodeError, encoding
//     errors *EncodeError. Trailing data after the value, empty input, and
//     nesting deeper than 10000 levels are errors.
//
// For example, a message type with a non-zero default and an optional
// field:
//
//	type Lookup struct {
//		Query string  `json:"query"`
//		Limit int64   `json:"limit" default:"10"`   // Python: limit: int = 10
//		Graph *string `json:"graph"`                // Python: graph: str | None = None
//		Data  Bytes   `json:"data"`                 // Python: data: bytes = b""
//	}
//
// Unmarshal of `{"query":"x"}` gives Limit 10 and a nil Graph, and Marshal
// writes it back as `{"query":"x","limit":10,"data":""}`.
//
// The codec builds a plan per type on first use and caches it, so the first
// message of a type pays for reflection and later ones do not. Use
// CheckType to validate a type up front: its *TypeError names the type, the
// Go field path from it (e.g. "Items[].When") and what is wrong.
package schema
