package schema

// Message types of TrustGraph's trustgraph.schema.field_extraction module.

// FieldExtractionRequest is a request to the field extraction service (queue
// request:tg:field-extraction): free-form state and the fields to extract.
type FieldExtractionRequest struct {
	State  map[string]any `json:"state"`
	Fields map[string]any `json:"fields"`
}

// FieldExtractionResponse is the field extraction service's reply (queue
// response:tg:field-extraction).
type FieldExtractionResponse struct {
	Error   *Error         `json:"error"`
	Answers map[string]any `json:"answers"`
	Model   string         `json:"model"`
}
