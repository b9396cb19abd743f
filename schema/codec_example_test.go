package schema_test

import (
	"errors"
	"fmt"

	"github.com/switchyard-go/switchyard/schema"
)

func ExampleMarshal() {
	model := "echo"
	resp := &schema.TextCompletionResponse{
		Response:    "hello <world> & naïve café",
		Model:       &model, // optional: written because it is set
		EndOfStream: true,   // the last message of a streamed reply
		// Error, InToken and OutToken are nil: left out.
		// Models is nil: written as [].
	}
	data, err := schema.Marshal(resp)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(data))
	// Output:
	// {"response":"hello <world> & naïve café","model":"echo","end_of_stream":true,"models":[]}
}

func ExampleUnmarshal() {
	// What a Python processor writes: every field, None as null, NaN as a
	// bare token, and perhaps keys this version does not know.
	wire := []byte(`{"operation": null, "system": "", "prompt": "Why?", "streaming": false,
		"response_format": null, "schema": {"type": "object", "score": NaN}, "added_later": [1, 2]}`)
	var req schema.TextCompletionRequest
	if err := schema.Unmarshal(wire, &req); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("operation=%q prompt=%q response_format=%v schema.score=%v\n",
		req.Operation, req.Prompt, req.ResponseFormat, (*req.Schema)["score"])

	// Errors name the field path.
	var tr struct {
		Triples []schema.Triple `json:"triples"`
	}
	err := schema.Unmarshal([]byte(`{"triples":[{"s":{"type":"i","iri":"http://x"}},{"s":{"iri":5}}]}`), &tr)
	var de *schema.DecodeError
	if errors.As(err, &de) {
		fmt.Println(de.Path+":", de.Msg)
	}
	// Output:
	// operation="completion" prompt="Why?" response_format=<nil> schema.score=NaN
	// triples[1].s.iri: expected string, got number
}

func ExampleDefaults() {
	type Query struct {
		Collection string `json:"collection" default:"default"`
		Limit      int64  `json:"limit" default:"10"`
		IsFinal    bool   `json:"is_final" default:"true"`
		Graph      *string
	}
	var q Query
	if err := schema.Defaults(&q); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%+v\n", q)
	data, _ := schema.Marshal(&q)
	fmt.Println(string(data))
	// Output:
	// {Collection:default Limit:10 IsFinal:true Graph:<nil>}
	// {"collection":"default","limit":10,"is_final":true}
}
