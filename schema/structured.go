package schema

// Message types of TrustGraph's trustgraph.schema.structured module:
// extracted objects, rows, structured data submission, structured data
// diagnosis, the rows (GraphQL) query service, natural language to GraphQL,
// and structured queries.

// ExtractedObject is an object extracted from text: Values holds one
// field-name-to-value map per object; SourceSpan is the text it came from.
type ExtractedObject struct {
	Metadata   *Metadata           `json:"metadata"`
	SchemaName string              `json:"schema_name"`
	Values     []map[string]string `json:"values"`
	Confidence float64             `json:"confidence"`
	SourceSpan string              `json:"source_span"`
}

// Rows is a batch of rows to store, with their schema.
type Rows struct {
	Metadata  *Metadata           `json:"metadata"`
	RowSchema *RowSchema          `json:"row_schema"`
	Rows      []map[string]string `json:"rows"`
}

// StructuredDataSubmission is raw structured data submitted for ingestion.
// Format is "json", "csv" or "xml"; SchemaName names a schema in the
// configuration; Options are format-specific.
type StructuredDataSubmission struct {
	Metadata   *Metadata         `json:"metadata"`
	Format     string            `json:"format"`
	SchemaName string            `json:"schema_name"`
	Data       Bytes             `json:"data"`
	Options    map[string]string `json:"options"`
}

// StructuredDataDiagnosisRequest is a request to the structured data
// diagnosis service. Operations: detect-type, generate-descriptor, diagnose,
// schema-selection. Type (csv, json, xml) is needed by generate-descriptor.
type StructuredDataDiagnosisRequest struct {
	Operation  string            `json:"operation"`
	Sample     string            `json:"sample"`
	Type       string            `json:"type"`
	SchemaName string            `json:"schema_name"`
	Options    map[string]string `json:"options"`
}

// StructuredDataDiagnosisResponse is the diagnosis service's reply.
// Descriptor is a JSON-encoded descriptor; SchemaMatches answers
// schema-selection.
type StructuredDataDiagnosisResponse struct {
	Error         *Error            `json:"error"`
	Operation     string            `json:"operation"`
	DetectedType  string            `json:"detected_type"`
	Confidence    float64           `json:"confidence"`
	Descriptor    string            `json:"descriptor"`
	Metadata      map[string]string `json:"metadata"`
	SchemaMatches []string          `json:"schema_matches"`
}

// GraphQLError is a field-level GraphQL error.
type GraphQLError struct {
	Message    string            `json:"message"`
	Path       []string          `json:"path"`
	Extensions map[string]string `json:"extensions"`
}

// RowsQueryRequest is a GraphQL query against structured rows.
// OperationName picks the operation of a multi-operation document.
type RowsQueryRequest struct {
	Collection    string            `json:"collection"`
	Query         string            `json:"query"`
	Variables     map[string]string `json:"variables"`
	OperationName *string           `json:"operation_name"`
}

// RowsQueryResponse is the rows query service's reply: Data is the
// JSON-encoded GraphQL result; Error is a system-level error, Errors the
// GraphQL field-level ones.
type RowsQueryResponse struct {
	Error      *Error            `json:"error"`
	Data       string            `json:"data"`
	Errors     []GraphQLError    `json:"errors"`
	Extensions map[string]string `json:"extensions"`
}

// QuestionToStructuredQueryRequest asks for a natural language question to
// be turned into a GraphQL query.
type QuestionToStructuredQueryRequest struct {
	Question   string `json:"question"`
	MaxResults int64  `json:"max_results"`
}

// QuestionToStructuredQueryResponse is the generated GraphQL query, its
// variables and the schemas it targets.
type QuestionToStructuredQueryResponse struct {
	Error           *Error            `json:"error"`
	GraphQLQuery    string            `json:"graphql_query"`
	Variables       map[string]string `json:"variables"`
	DetectedSchemas []string          `json:"detected_schemas"`
	Confidence      float64           `json:"confidence"`
}

// StructuredQueryRequest is a natural language question answered from
// structured data.
type StructuredQueryRequest struct {
	Question   string `json:"question"`
	Collection string `json:"collection"`
}

// StructuredQueryResponse is the structured query service's reply: Data is
// the JSON-encoded GraphQL result.
type StructuredQueryResponse struct {
	Error  *Error   `json:"error"`
	Data   string   `json:"data"`
	Errors []string `json:"errors"`
}
