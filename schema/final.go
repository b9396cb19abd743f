package schema

import (
	"reflect"
	"sync"
	"unsafe"
)

// Stream terminators and error fields of response types, for code that
// answers on a handler's behalf (error replies, the last message of a
// stream) without knowing the concrete type.
//
// A TrustGraph client reading a streamed reply stops when the message's
// terminator field is true; the field's name depends on the service:
//
//	end_of_stream   text-completion, prompt, tool-service
//	end_of_dialog   agent (AgentResponse)
//	end_of_session  graph-rag, document-rag (GraphRagResponse, DocumentRagResponse)
//	is_final        triples, sparql, librarian, passthrough
//	eos             knowledge (KnowledgeResponse)
//
// A type with several of these fields uses the one that ends the whole
// reply, in the order of terminatorNames: AgentResponse's end_of_dialog
// (end_of_message only ends one chunk), and GraphRagResponse's and
// DocumentRagResponse's end_of_session (end_of_stream only ends the answer
// text; TrustGraph's graph-rag client and gateway wait for end_of_session).
// SetFinal sets that field only; a handler that streams answer text sets
// end_of_stream itself.

// terminatorNames are the JSON names of stream terminator fields, the one
// that ends the whole reply first.
var terminatorNames = [...]string{"end_of_dialog", "end_of_session", "eos", "is_final", "end_of_stream"}

// replyFields is what SetFinal, IsFinal and SetError need to know about one
// struct type: the offsets of its terminator and error fields.
type replyFields struct {
	final    string // JSON name of the terminator field, "" for none
	finalOff uintptr
	hasError bool
	errorOff uintptr
}

var (
	rtError = reflect.TypeFor[Error]()

	// replyCache maps a struct type, and the pointer type to it, to its
	// *replyFields.
	replyCache sync.Map
)

// replyFieldsOf returns the reply fields of t, a struct type or a pointer
// to one; for any other type it has none.
func replyFieldsOf(t reflect.Type) *replyFields {
	if v, ok := replyCache.Load(t); ok {
		return v.(*replyFields)
	}
	rf := &replyFields{}
	st := t
	if st.Kind() == reflect.Pointer {
		st = st.Elem()
	}
	if st.Kind() == reflect.Struct {
		if c, err := planFor(st); err == nil && c.kind == kStruct {
			rf = findReplyFields(c)
		}
	}
	v, _ := replyCache.LoadOrStore(t, rf)
	return v.(*replyFields)
}

// findReplyFields looks for the terminator and error fields in the plan of
// a struct: a bool field with a terminator name, and an `error` field of
// type *Error.
func findReplyFields(c *codec) *replyFields {
	rf := &replyFields{}
	for _, name := range terminatorNames {
		if i, ok := c.byName[name]; ok && c.fields[i].c.kind == kBool {
			rf.final, rf.finalOff = name, c.fields[i].offset
			break
		}
	}
	if i, ok := c.byName["error"]; ok {
		if f := &c.fields[i]; f.c.kind == kPtr && f.c.elem.typ == rtError {
			rf.hasError, rf.errorOff = true, f.offset
		}
	}
	return rf
}

// structPointer returns the struct v points to, or nil when v is not a
// non-nil pointer.
func structPointer(v any) unsafe.Pointer {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer {
		return nil
	}
	return rv.UnsafePointer()
}

// FinalFlag returns the JSON name of the stream terminator field of t (a
// message struct type or a pointer to one), e.g. "end_of_stream" for
// TextCompletionResponse, and false when t has none. See SetFinal.
func FinalFlag(t reflect.Type) (string, bool) {
	if t == nil {
		return "", false
	}
	rf := replyFieldsOf(t)
	return rf.final, rf.final != ""
}

// SetFinal sets the stream terminator field of the message v points to
// (end_of_stream, end_of_dialog, end_of_session, is_final or eos; see
// FinalFlag) to final. It reports whether v, a non-nil pointer to a
// message struct, has such a field; if not it changes nothing. After the
// first call for a type it costs a map lookup.
func SetFinal(v any, final bool) bool {
	if v == nil {
		return false
	}
	rf := replyFieldsOf(reflect.TypeOf(v))
	if rf.final == "" {
		return false
	}
	p := structPointer(v)
	if p == nil {
		return false
	}
	*(*bool)(unsafe.Add(p, rf.finalOff)) = final
	return true
}

// IsFinal returns the stream terminator field of message v (a struct or a
// pointer to one), and ok=false when v's type has none or v is a nil
// pointer.
func IsFinal(v any) (final bool, ok bool) {
	if v == nil {
		return false, false
	}
	t := reflect.TypeOf(v)
	rf := replyFieldsOf(t)
	if rf.final == "" {
		return false, false
	}
	if t.Kind() == reflect.Pointer {
		p := structPointer(v)
		if p == nil {
			return false, false
		}
		return *(*bool)(unsafe.Add(p, rf.finalOff)), true
	}
	// A struct value: read it from an addressable copy.
	cp := reflect.New(t)
	cp.Elem().Set(reflect.ValueOf(v))
	return *(*bool)(unsafe.Add(cp.UnsafePointer(), rf.finalOff)), true
}

// HasErrorField reports whether t (a message struct type or a pointer to
// one) has an `error` field of type *Error, which SetError sets.
func HasErrorField(t reflect.Type) bool {
	return t != nil && replyFieldsOf(t).hasError
}

// SetError sets the `error` field of the message v points to to
// &Error{Type: typ, Message: message}. It reports whether v, a non-nil
// pointer to a message struct, has such a field (of type *Error); if not it
// changes nothing. After the first call for a type it costs a map lookup.
func SetError(v any, typ, message string) bool {
	if v == nil {
		return false
	}
	rf := replyFieldsOf(reflect.TypeOf(v))
	if !rf.hasError {
		return false
	}
	p := structPointer(v)
	if p == nil {
		return false
	}
	*(**Error)(unsafe.Add(p, rf.errorOff)) = &Error{Type: typ, Message: message}
	return true
}
