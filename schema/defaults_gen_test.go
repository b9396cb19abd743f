package schema

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/switchyard-go/switchyard/schema/internal/gendefaults"
)

// TestGeneratedConstructorsAreCurrent fails when defaults_gen.go differs
// from what the generator writes for the current types.
func TestGeneratedConstructorsAreCurrent(t *testing.T) {
	want, err := gendefaults.Source("schema", Types(), Defaults)
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile("defaults_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, want) {
		t.Fatal("defaults_gen.go is stale: run `go generate ./schema`")
	}
	if !bytes.HasPrefix(have, []byte(gendefaults.Header+"\n")) ||
		!strings.HasSuffix(gendefaults.Header, "DO NOT EDIT.") || !strings.HasPrefix(gendefaults.Header, "// Code generated ") {
		t.Error("defaults_gen.go lacks the standard generated-code header")
	}
}

// TestConstructorsHoldTheDefaults checks that every catalogue type with a
// non-zero default has a constructor, that it returns what Defaults gives
// (a fresh value each time), and that its wire form is what Python writes
// for the dataclass built with no arguments.
func TestConstructorsHoldTheDefaults(t *testing.T) {
	types := Types()
	n := 0
	for _, name := range sortedTypeNames() {
		typ := types[name]
		want := reflect.New(typ)
		if err := Defaults(want.Interface()); err != nil {
			t.Fatal(err)
		}
		ctor := newWithDefaults(typ)
		if want.Elem().IsZero() {
			if ctor != nil {
				t.Errorf("%s: a constructor, but no non-zero default", name)
			}
			continue
		}
		if ctor == nil {
			t.Errorf("%s: non-zero defaults but no constructor", name)
			continue
		}
		n++
		got := ctor()
		if !reflect.DeepEqual(got, want.Interface()) {
			t.Errorf("%s: constructor gives %+v, Defaults %+v", name, got, want.Interface())
		}
		if reflect.ValueOf(got).Pointer() == reflect.ValueOf(ctor()).Pointer() {
			t.Errorf("%s: constructor returns the same value twice", name)
		}
		wire, err := Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		var python string
		for _, c := range readGolden(t, name) {
			if c.Name == "defaults" {
				python = c.Wire
			}
		}
		if python == "" {
			t.Fatalf("%s: no defaults case in the golden vectors", name)
		}
		if diffs := wireDiff(typ, []byte(python), wire); len(diffs) > 0 {
			t.Errorf("%s: New%s() differs from Python's %s():\n  %s\npython: %s\ngo:     %s",
				name, typ.Name(), name, strings.Join(diffs, "\n  "), python, wire)
		}
	}
	t.Logf("%d constructors", n)
}

// The trap the constructors close: a struct literal sends is_final=false,
// so TrustGraph's query_stream waits for more batches.
func ExampleNewTriplesQueryResponse() {
	lit, _ := Marshal(&TriplesQueryResponse{Triples: []Triple{}})
	resp := NewTriplesQueryResponse()
	resp.Triples = []Triple{}
	ctor, _ := Marshal(resp)
	os.Stdout.Write(append(lit, '\n'))
	os.Stdout.Write(append(ctor, '\n'))
	// Output:
	// {"triples":[],"is_final":false}
	// {"triples":[],"is_final":true}
}
