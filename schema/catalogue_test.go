package schema

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// pyField is one field of a Python dataclass as `golden.py list` prints it.
type pyField struct {
	Name    string          `json:"name"`
	Type    string          `json:"type"`
	Default json.RawMessage `json:"default"`
}

// pyClass is one dataclass as `golden.py list` prints it.
type pyClass struct {
	Module string    `json:"module"`
	Fields []pyField `json:"fields"`
}

// pythonCatalogue returns the dataclasses of trustgraph.schema: listed live
// by the pinned TrustGraph when its Python environment is available, else
// read from the snapshot checked in next to the golden vectors.
func pythonCatalogue(t *testing.T) map[string]pyClass {
	t.Helper()
	var data []byte
	if _, err := os.Stat(filepath.Join("..", "scripts", "python-env.sh")); err == nil {
		ok := t.Run("python-list", func(t *testing.T) {
			out, err := runGolden(t, "list")
			if err != nil {
				t.Fatal(err)
			}
			data = out
		})
		if !ok {
			t.FailNow()
		}
	}
	if data == nil {
		t.Log("TrustGraph's Python environment is not available: using the checked-in catalogue snapshot")
		var err error
		data, err = os.ReadFile(filepath.Join(goldenDir, "_meta", "catalogue.json"))
		if err != nil {
			t.Fatal(err)
		}
	}
	var cat map[string]pyClass
	if err := json.Unmarshal(data, &cat); err != nil {
		t.Fatal(err)
	}
	if len(cat) == 0 {
		t.Fatal("the Python catalogue is empty")
	}
	return cat
}

// describeGo spells a Go field type the way golden.py spells Python types.
func describeGo(typ reflect.Type, names map[reflect.Type]string) string {
	switch typ {
	case bytesType:
		return "bytes"
	case attributesType:
		return "dict[str,str|list[str]]"
	}
	switch typ.Kind() {
	case reflect.Pointer:
		return "optional[" + describeGo(typ.Elem(), names) + "]"
	case reflect.String:
		return "str"
	case reflect.Int64:
		return "int"
	case reflect.Float64:
		return "float"
	case reflect.Bool:
		return "bool"
	case reflect.Slice:
		return "list[" + describeGo(typ.Elem(), names) + "]"
	case reflect.Map:
		if typ.Key().Kind() != reflect.String {
			return "?" + typ.String()
		}
		if typ.Elem().Kind() == reflect.Interface {
			return "dict"
		}
		return "dict[str," + describeGo(typ.Elem(), names) + "]"
	case reflect.Struct:
		if n, ok := names[typ]; ok {
			return n
		}
	}
	return "?" + typ.String()
}

// TestCatalogue checks that every dataclass of trustgraph.schema has a Go
// type with the same fields, in the same order, of matching types, and that
// decoding {} gives each field Python's default.
func TestCatalogue(t *testing.T) {
	cat := pythonCatalogue(t)
	types := Types()
	names := map[reflect.Type]string{}
	for n, typ := range types {
		names[typ] = n
	}
	var missing, extra []string
	for n := range cat {
		if _, ok := types[n]; !ok {
			missing = append(missing, n)
		}
	}
	for n := range types {
		if _, ok := cat[n]; !ok {
			extra = append(extra, n)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("Python dataclasses without a Go type in Types(): %s", strings.Join(missing, ", "))
	}
	if len(extra) > 0 {
		t.Errorf("Types() lists names trustgraph.schema does not define: %s", strings.Join(extra, ", "))
	}
	t.Logf("%d Python dataclasses, %d Go types", len(cat), len(types))

	for _, n := range sortedTypeNames() {
		pc, ok := cat[n]
		if !ok {
			continue
		}
		typ := types[n]
		t.Run(n, func(t *testing.T) {
			var goFields []reflect.StructField
			for i := 0; i < typ.NumField(); i++ {
				if f := typ.Field(i); jsonName(f) != "" {
					goFields = append(goFields, f)
				}
			}
			var pyNames, goNames []string
			for _, f := range pc.Fields {
				pyNames = append(pyNames, f.Name)
			}
			for _, f := range goFields {
				goNames = append(goNames, jsonName(f))
			}
			if !reflect.DeepEqual(pyNames, goNames) {
				t.Fatalf("fields differ:\npython (%s): %s\ngo (%s):     %s",
					pc.Module, strings.Join(pyNames, " "), typ, strings.Join(goNames, " "))
			}
			for i, f := range pc.Fields {
				if got := describeGo(goFields[i].Type, names); got != f.Type {
					t.Errorf("field %s: python type %s, go %s (%s)", f.Name, f.Type, got, goFields[i].Type)
				}
			}

			// Defaults: {} must decode to Python's defaults.
			v := reflect.New(typ)
			if err := Unmarshal([]byte(`{}`), v.Interface()); err != nil {
				t.Fatalf("decode {}: %v", err)
			}
			enc, err := Marshal(v.Interface())
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			gv, err := parseLoose(enc)
			if err != nil {
				t.Fatalf("encode gave invalid JSON %s: %v", enc, err)
			}
			gm, _ := gv.(map[string]any)
			for i, f := range pc.Fields {
				want, err := parseLoose(f.Default)
				if err != nil {
					t.Fatalf("default of %s: %v", f.Name, err)
				}
				got, present := gm[f.Name]
				if !present {
					if want != nil || goFields[i].Type.Kind() != reflect.Pointer {
						t.Errorf("field %s: {} decodes to nothing written, python default %s", f.Name, f.Default)
					}
					continue
				}
				var diffs []string
				compareTyped(goFields[i].Type, want, got, f.Name, &diffs)
				for _, d := range diffs {
					t.Errorf("default differs: %s (python default %s, decoded {} encodes as %s)", d, f.Default, enc)
				}
			}
		})
	}
}
