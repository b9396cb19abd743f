package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/switchyard-go/switchyard/middleware"
	"github.com/switchyard-go/switchyard/schema"
)

// Template is one prompt template: {{name}} placeholders are replaced by the
// request's terms.
type Template struct {
	System string `json:"system"`
	Prompt string `json:"prompt"`
}

// DefaultTemplates are the templates the prompt-template example knows
// without a templates file.
var DefaultTemplates = map[string]Template{
	"question":  {System: "You answer questions briefly.", Prompt: "Answer the question: {{question}}"},
	"summarize": {System: "You summarize text.", Prompt: "Summarize in one sentence: {{text}}"},
}

// LoadTemplates reads a JSON object of name -> {"system":..., "prompt":...}.
func LoadTemplates(path string) (map[string]Template, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading templates: %w", err)
	}
	var t map[string]Template
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("templates file %s: %w", path, err)
	}
	if len(t) == 0 {
		return nil, fmt.Errorf("templates file %s defines no templates", path)
	}
	return t, nil
}

// Templater renders prompt requests into completion requests.
type Templater struct {
	Templates map[string]Template
}

// Render turns a PromptRequest into the TextCompletionRequest its template
// produces. Terms hold JSON-encoded values, as TrustGraph sends them; a
// string term is inserted as its text, any other value as its JSON. An
// unknown template or a missing term is a permanent error: the request goes
// to the poison queue, since redelivery cannot fix it.
func (t Templater) Render(_ context.Context, req *schema.PromptRequest) (*schema.TextCompletionRequest, error) {
	tpl, ok := t.Templates[req.ID]
	if !ok {
		return nil, middleware.Permanent(fmt.Errorf("unknown prompt template %q (known: %s)", req.ID, strings.Join(t.names(), ", ")))
	}
	prompt, err := fill(tpl.Prompt, req.Terms)
	if err != nil {
		return nil, middleware.Permanent(fmt.Errorf("template %q: %w", req.ID, err))
	}
	system, err := fill(tpl.System, req.Terms)
	if err != nil {
		return nil, middleware.Permanent(fmt.Errorf("template %q: %w", req.ID, err))
	}
	out := &schema.TextCompletionRequest{Operation: "completion", System: system, Prompt: prompt, Streaming: req.Streaming}
	return out, nil
}

func (t Templater) names() []string {
	names := make([]string, 0, len(t.Templates))
	for n := range t.Templates {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// fill replaces each {{name}} in s with the decoded term.
func fill(s string, terms map[string]string) (string, error) {
	var b strings.Builder
	for {
		open := strings.Index(s, "{{")
		if open < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		end := strings.Index(s[open:], "}}")
		if end < 0 {
			return "", fmt.Errorf("unclosed {{ in %q", s)
		}
		name := strings.TrimSpace(s[open+2 : open+end])
		raw, ok := terms[name]
		if !ok {
			return "", fmt.Errorf("term %q is missing", name)
		}
		b.WriteString(s[:open])
		b.WriteString(termText(raw))
		s = s[open+end+2:]
	}
}

// termText decodes a JSON-encoded term; a value that is not JSON is used as it is.
func termText(raw string) string {
	var v any
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		return raw
	}
	if s, ok := v.(string); ok {
		return s
	}
	return raw
}
