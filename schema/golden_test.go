package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/switchyard-go/switchyard/internal/brokertest"
)

// The golden vectors in testdata/golden are payloads written by TrustGraph's
// own Pulsar producer code (scripts/golden.py generate). Each Go type must
// decode them and encode them again to the same JSON, and TrustGraph's own
// reader must turn Go's output back into the same Python object.

const goldenDir = "testdata/golden"

var (
	pythonOnce sync.Once
	pythonPath string
	pythonErr  error
)

// tgPython returns the interpreter of the TrustGraph Python environment made
// by scripts/python-env.sh. Under `make test` (SWITCHYARD_REQUIRE_BROKERS=1)
// it creates the environment when missing and fails the test when that is
// impossible; otherwise it skips the test when the environment is missing.
func tgPython(t testing.TB) string {
	t.Helper()
	pythonOnce.Do(func() {
		args := []string{"--check"}
		if brokertest.Required() {
			args = nil
		}
		cmd := exec.Command(filepath.Join("..", "scripts", "python-env.sh"), args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			pythonErr = fmt.Errorf("scripts/python-env.sh %s: %v %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
			return
		}
		pythonPath = strings.TrimSpace(string(out))
	})
	if pythonErr != nil {
		msg := "the TrustGraph Python environment is not available (" + strings.TrimSpace(pythonErr.Error()) +
			"); run scripts/python-env.sh to create it"
		if brokertest.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return pythonPath
}

// runGolden runs scripts/golden.py with args and returns its stdout.
func runGolden(t testing.TB, args ...string) ([]byte, error) {
	t.Helper()
	py := tgPython(t)
	cmd := exec.Command(py, append([]string{filepath.Join("..", "scripts", "golden.py")}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("golden.py %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// goldenCase is one vector: a case name and the exact payload text.
type goldenCase struct {
	Name string `json:"name"`
	Wire string `json:"wire"`
}

func readGolden(t *testing.T, typeName string) []goldenCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(goldenDir, typeName+".json"))
	if err != nil {
		t.Fatalf("no golden vectors for %s: %v (run scripts/golden.py generate)", typeName, err)
	}
	var cases []goldenCase
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatalf("%s.json: %v", typeName, err)
	}
	if len(cases) == 0 {
		t.Fatalf("%s.json holds no cases", typeName)
	}
	return cases
}

func sortedTypeNames() []string {
	names := make([]string, 0, len(Types()))
	for name := range Types() {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func TestGoldenFilesMatchCatalogue(t *testing.T) {
	entries, err := os.ReadDir(goldenDir)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".json"); ok && !e.IsDir() {
			have[name] = true
		}
	}
	for name := range Types() {
		if !have[name] {
			t.Errorf("no golden vectors for %s", name)
		}
		delete(have, name)
	}
	for name := range have {
		t.Errorf("golden vectors for %s, which Types() does not list", name)
	}
}

// TestGoldenWire decodes every vector into its Go type, encodes it again,
// and compares the result with the vector; then TrustGraph's reader checks
// Go's output (subtest python-reads-go).
func TestGoldenWire(t *testing.T) {
	outDir := t.TempDir()
	types := Types()
	for _, name := range sortedTypeNames() {
		typ := types[name]
		cases := readGolden(t, name)
		var out []goldenCase
		t.Run(name, func(t *testing.T) {
			for _, c := range cases {
				v := reflect.New(typ)
				if err := Unmarshal([]byte(c.Wire), v.Interface()); err != nil {
					t.Errorf("%s: decode: %v\npython: %s", c.Name, err, c.Wire)
					continue
				}
				enc, err := Marshal(v.Interface())
				if err != nil {
					t.Errorf("%s: encode: %v\npython: %s", c.Name, err, c.Wire)
					continue
				}
				out = append(out, goldenCase{Name: c.Name, Wire: string(enc)})
				if diffs := wireDiff(typ, []byte(c.Wire), enc); len(diffs) > 0 {
					t.Errorf("%s: Go's encoding differs from Python's:\n  %s\npython: %s\ngo:     %s",
						c.Name, strings.Join(diffs, "\n  "), c.Wire, enc)
				}
			}
		})
		data, err := json.MarshalIndent(out, "", " ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(outDir, name+".json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("python-reads-go", func(t *testing.T) {
		out, err := runGolden(t, "verify", outDir, goldenDir)
		if err != nil {
			t.Fatal(err)
		}
		t.Log(strings.TrimSpace(string(out)))
	})
}

// TestGoldenCurrent fails when the checked-in vectors differ from what the
// pinned TrustGraph writes.
func TestGoldenCurrent(t *testing.T) {
	if _, err := runGolden(t, "check", goldenDir); err != nil {
		t.Fatal(err)
	}
}

// nonFinite stands for a bare NaN, Infinity or -Infinity token.
type nonFinite string

const nonFiniteKey = "\x00nonfinite"

// parseLoose parses JSON that may hold Python's bare NaN, Infinity and
// -Infinity tokens, keeping numbers as json.Number and turning those tokens
// into nonFinite values.
func parseLoose(data []byte) (any, error) {
	var b bytes.Buffer
	inString, escaped := false, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inString {
			b.WriteByte(c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		matched := false
		for _, tok := range []string{"NaN", "-Infinity", "Infinity"} {
			if bytes.HasPrefix(data[i:], []byte(tok)) {
				b.WriteString(`{"\u0000nonfinite":"` + tok + `"}`)
				i += len(tok) - 1
				matched = true
				break
			}
		}
		if matched {
			continue
		}
		if c == '"' {
			inString = true
		}
		b.WriteByte(c)
	}
	dec := json.NewDecoder(&b)
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return unwrapNonFinite(v), nil
}

func unwrapNonFinite(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if tok, ok := x[nonFiniteKey]; ok && len(x) == 1 {
			return nonFinite(tok.(string))
		}
		for k, e := range x {
			x[k] = unwrapNonFinite(e)
		}
	case []any:
		for i, e := range x {
			x[i] = unwrapNonFinite(e)
		}
	}
	return v
}

// wireDiff compares two payloads of Go type typ and describes every
// difference. A key that Python writes as null may be missing from Go's
// output only where the Go field is a pointer (an optional field).
func wireDiff(typ reflect.Type, python, gowire []byte) []string {
	pv, err := parseLoose(python)
	if err != nil {
		return []string{"python wire does not parse: " + err.Error()}
	}
	gv, err := parseLoose(gowire)
	if err != nil {
		return []string{"go wire does not parse: " + err.Error()}
	}
	var diffs []string
	compareTyped(typ, pv, gv, "$", &diffs)
	return diffs
}

var (
	bytesType      = reflect.TypeFor[Bytes]()
	attributesType = reflect.TypeFor[Attributes]()
)

// jsonName returns the JSON key of a struct field, or "" for none.
func jsonName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		return f.Name
	}
	return name
}

func compareTyped(typ reflect.Type, py, gv any, path string, diffs *[]string) {
	add := func(format string, args ...any) {
		*diffs = append(*diffs, path+": "+fmt.Sprintf(format, args...))
	}
	if typ.Kind() == reflect.Pointer {
		if py == nil || gv == nil {
			if py != nil || gv != nil {
				add("python %s, go %s", show(py), show(gv))
			}
			return
		}
		compareTyped(typ.Elem(), py, gv, path, diffs)
		return
	}
	if typ == bytesType {
		ps, ok1 := py.(string)
		gs, ok2 := gv.(string)
		if !ok1 || !ok2 || ps != gs {
			add("bytes: python %s, go %s", show(py), show(gv))
		}
		return
	}
	switch typ.Kind() {
	case reflect.Struct:
		pm, ok1 := py.(map[string]any)
		gm, ok2 := gv.(map[string]any)
		if !ok1 || !ok2 {
			add("object expected: python %s, go %s", show(py), show(gv))
			return
		}
		seen := map[string]bool{}
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			name := jsonName(f)
			if name == "" {
				continue
			}
			seen[name] = true
			p, pok := pm[name]
			g, gok := gm[name]
			sub := path + "." + name
			switch {
			case !pok && !gok:
				*diffs = append(*diffs, sub+": missing from both")
			case !pok:
				*diffs = append(*diffs, sub+": python did not write it")
			case !gok:
				if f.Type.Kind() != reflect.Pointer || p != nil {
					*diffs = append(*diffs, sub+": go did not write it; python wrote "+show(p))
				}
			default:
				compareTyped(f.Type, p, g, sub, diffs)
			}
		}
		for k := range pm {
			if !seen[k] {
				add("python key %q has no Go field", k)
			}
		}
		for k := range gm {
			if !seen[k] {
				add("go wrote unknown key %q", k)
			}
		}
	case reflect.Slice, reflect.Array:
		ps, ok1 := py.([]any)
		gs, ok2 := gv.([]any)
		if !ok1 || !ok2 {
			add("array expected: python %s, go %s", show(py), show(gv))
			return
		}
		if len(ps) != len(gs) {
			add("python has %d items, go %d", len(ps), len(gs))
			return
		}
		for i := range ps {
			compareTyped(typ.Elem(), ps[i], gs[i], fmt.Sprintf("%s[%d]", path, i), diffs)
		}
	case reflect.Map:
		pm, ok1 := py.(map[string]any)
		gm, ok2 := gv.(map[string]any)
		if !ok1 || !ok2 {
			add("object expected: python %s, go %s", show(py), show(gv))
			return
		}
		for k, p := range pm {
			g, ok := gm[k]
			if !ok {
				add("go lacks key %q", k)
				continue
			}
			compareTyped(typ.Elem(), p, g, path+"["+strconv.Quote(k)+"]", diffs)
		}
		for k := range gm {
			if _, ok := pm[k]; !ok {
				add("go has extra key %q", k)
			}
		}
	default:
		if !sameJSON(py, gv) {
			add("python %s, go %s", show(py), show(gv))
		}
	}
}

// sameJSON compares two parsed JSON values: numbers by value, NaN equal to
// NaN, everything else exactly.
func sameJSON(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case json.Number:
		y, ok := b.(json.Number)
		return ok && sameNumber(x, y)
	case nonFinite:
		return b == x
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameJSON(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !sameJSON(v, w) {
				return false
			}
		}
		return true
	default:
		return a == b
	}
}

func sameNumber(a, b json.Number) bool {
	if a == b {
		return true
	}
	ai, err1 := strconv.ParseInt(string(a), 10, 64)
	bi, err2 := strconv.ParseInt(string(b), 10, 64)
	if err1 == nil && err2 == nil {
		return ai == bi
	}
	af, err1 := strconv.ParseFloat(string(a), 64)
	bf, err2 := strconv.ParseFloat(string(b), 64)
	if err1 != nil || err2 != nil {
		return false
	}
	return af == bf
}

func show(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case nonFinite:
		return string(x)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return string(data)
}

func TestParseLoose(t *testing.T) {
	v, err := parseLoose([]byte(`{"a": [NaN, Infinity, -Infinity, 1.5, "NaN \" Infinity"], "b": 9223372036854775807}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"a": []any{nonFinite("NaN"), nonFinite("Infinity"), nonFinite("-Infinity"), json.Number("1.5"), `NaN " Infinity`},
		"b": json.Number("9223372036854775807"),
	}
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("got %#v", v)
	}
	if sameNumber("9223372036854775807", "9223372036854775806") {
		t.Error("big integers that differ compare equal")
	}
	if !sameNumber("0", "0.0") || !sameNumber("1e+16", "10000000000000000") {
		t.Error("equal numbers in different spellings compare unequal")
	}
}
