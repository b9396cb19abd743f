package schema

import (
	"bytes"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// terminatorOf finds the terminator field of struct t the slow way: the
// first name of terminatorNames that a bool field of t has.
func terminatorOf(t reflect.Type) string {
	names := map[string]reflect.Kind{}
	for i := 0; i < t.NumField(); i++ {
		if name := jsonName(t.Field(i)); name != "" {
			names[name] = t.Field(i).Type.Kind()
		}
	}
	for _, n := range terminatorNames {
		if names[n] == reflect.Bool {
			return n
		}
	}
	return ""
}

func TestFinalFlagsOfServices(t *testing.T) {
	want := map[any]string{
		&TextCompletionResponse{}: "end_of_stream",
		&PromptResponse{}:         "end_of_stream",
		&ToolServiceResponse{}:    "end_of_stream",
		&AgentResponse{}:          "end_of_dialog",
		&GraphRagResponse{}:       "end_of_session",
		&DocumentRagResponse{}:    "end_of_session",
		&TriplesQueryResponse{}:   "is_final",
		&SparqlQueryResponse{}:    "is_final",
		&LibrarianResponse{}:      "is_final",
		&KnowledgeResponse{}:      "eos",
		&EmbeddingsResponse{}:     "",
		&TextCompletionRequest{}:  "",
	}
	for v, name := range want {
		got, ok := FinalFlag(reflect.TypeOf(v))
		if got != name || ok != (name != "") {
			t.Errorf("%T: FinalFlag = %q, %v; want %q", v, got, ok, name)
		}
	}
}

// TestFinalAndErrorOnEveryType sets and reads the terminator and error
// fields of every catalogue type, and checks the wire shows them.
func TestFinalAndErrorOnEveryType(t *testing.T) {
	types := Types()
	var withFinal, withError []string
	for _, name := range sortedTypeNames() {
		typ := types[name]
		t.Run(name, func(t *testing.T) {
			term := terminatorOf(typ)
			_, hasErr := typ.FieldByName("Error")
			hasErr = hasErr && typ.Kind() == reflect.Struct
			if f, ok := typ.FieldByName("Error"); ok && (f.Type != reflect.TypeFor[*Error]() || jsonName(f) != "error") {
				hasErr = false
			}
			if got, ok := FinalFlag(typ); got != term || ok != (term != "") {
				t.Fatalf("FinalFlag = %q, want %q", got, term)
			}
			if got, _ := FinalFlag(reflect.PointerTo(typ)); got != term {
				t.Fatalf("FinalFlag of the pointer = %q, want %q", got, term)
			}
			if HasErrorField(typ) != hasErr || HasErrorField(reflect.PointerTo(typ)) != hasErr {
				t.Fatalf("HasErrorField = %v, want %v", HasErrorField(typ), hasErr)
			}
			if term != "" {
				withFinal = append(withFinal, name+":"+term)
			}
			if hasErr {
				withError = append(withError, name)
			}

			v := reflect.New(typ).Interface()
			if err := Defaults(v); err != nil {
				t.Fatal(err)
			}
			before, err := Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			for _, final := range []bool{true, false, true} {
				if got := SetFinal(v, final); got != (term != "") {
					t.Fatalf("SetFinal = %v", got)
				}
				f, ok := IsFinal(v)
				if ok != (term != "") || (ok && f != final) {
					t.Fatalf("after SetFinal(%v): IsFinal = %v, %v", final, f, ok)
				}
				f, ok = IsFinal(reflect.ValueOf(v).Elem().Interface())
				if ok != (term != "") || (ok && f != final) {
					t.Fatalf("after SetFinal(%v): IsFinal of the value = %v, %v", final, f, ok)
				}
			}
			if !SetError(v, "llm-error", "rate limited \u2713") {
				if hasErr {
					t.Fatal("SetError = false")
				}
			} else if !hasErr {
				t.Fatal("SetError = true for a type without an error field")
			}
			wire, err := Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			if term == "" && !hasErr && !bytes.Equal(wire, before) {
				t.Fatalf("a type without the fields changed:\nbefore %s\nafter  %s", before, wire)
			}
			if term != "" && !strings.Contains(string(wire), `"`+term+`":true`) {
				t.Errorf("wire lacks %s=true: %s", term, wire)
			}
			back := reflect.New(typ).Interface()
			if err := Unmarshal(wire, back); err != nil {
				t.Fatal(err)
			}
			if f, ok := IsFinal(back); term != "" && (!ok || !f) {
				t.Errorf("decoded %s = %v", term, f)
			}
			if hasErr {
				e := reflect.ValueOf(back).Elem().FieldByName("Error").Interface().(*Error)
				if e == nil || e.Type != "llm-error" || e.Message != "rate limited \u2713" {
					t.Errorf("decoded error %+v from %s", e, wire)
				}
			}
			// A nil pointer and a value are refused.
			nilPtr := reflect.Zero(reflect.PointerTo(typ)).Interface()
			if SetFinal(nilPtr, true) || SetError(nilPtr, "x", "y") {
				t.Error("a nil pointer was accepted")
			}
			if _, ok := IsFinal(nilPtr); ok {
				t.Error("IsFinal of a nil pointer is ok")
			}
			if SetFinal(reflect.ValueOf(v).Elem().Interface(), true) || SetError(reflect.ValueOf(v).Elem().Interface(), "x", "y") {
				t.Error("a struct value was accepted")
			}
		})
	}
	sort.Strings(withFinal)
	t.Logf("terminators: %s", strings.Join(withFinal, " "))
	t.Logf("error fields: %s", strings.Join(withError, " "))
	// Things that are not messages.
	for _, v := range []any{nil, 3, "x", new(int), []string{}, map[string]any{}} {
		if SetFinal(v, true) || SetError(v, "a", "b") {
			t.Errorf("%T accepted", v)
		}
		if _, ok := IsFinal(v); ok {
			t.Errorf("IsFinal(%T) ok", v)
		}
	}
	if _, ok := FinalFlag(nil); ok || HasErrorField(nil) {
		t.Error("nil type has fields")
	}
}

func TestFinalAndErrorCostNothing(t *testing.T) {
	resp := &TriplesQueryResponse{}
	SetFinal(resp, false)
	if n := testing.AllocsPerRun(100, func() {
		SetFinal(resp, true)
		if f, ok := IsFinal(resp); !f || !ok {
			t.Fatal("not final")
		}
	}); n != 0 {
		t.Errorf("SetFinal and IsFinal allocate %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { SetError(resp, "a", "b") }); n > 1 {
		t.Errorf("SetError allocates %v times, want 1 (the Error)", n)
	}
}

func BenchmarkSetFinal(b *testing.B) {
	resp := &TextCompletionResponse{}
	for b.Loop() {
		SetFinal(resp, true)
		SetError(resp, "a", "b")
	}
}
