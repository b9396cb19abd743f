// Command gendefaults writes schema/defaults_gen.go: a New<Type>
// constructor for every message type of schema.Types() with a non-zero
// declared default. `go generate ./schema` runs it. If defaults_gen.go no
// longer compiles (a field it sets was removed), delete it and run it again.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/switchyard-go/switchyard/schema"
	"github.com/switchyard-go/switchyard/schema/internal/gendefaults"
)

func main() {
	out := flag.String("o", "defaults_gen.go", "file to write")
	flag.Parse()
	src, err := gendefaults.Source("schema", schema.Types(), schema.Defaults)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, src, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gendefaults:", err)
		os.Exit(1)
	}
}
