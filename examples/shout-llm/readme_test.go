package main

import (
	"os"
	"strings"
	"testing"
)

// The README shows this processor as the complete example of how to write
// one; it must stay the code that this package compiles.
func TestREADMEShowsThisProcessor(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	code := string(src)
	code = code[strings.Index(code, "package main"):]
	if !strings.Contains(string(readme), "```go\n"+code+"```") {
		t.Fatal("README.md's processor example differs from examples/shout-llm/main.go")
	}
}
