package schema

// Message types of TrustGraph's trustgraph.schema.triples module: entity
// contexts, triples, the triples query service and the SPARQL query service.

// EntityContext is a graph entity with a passage of text about it. ChunkID
// names the chunk it was derived from.
type EntityContext struct {
	Entity     *Term      `json:"entity"`
	Context    string     `json:"context"`
	ChunkID    string     `json:"chunk_id"`
	RDFType    []string   `json:"rdf_type"`
	Attributes Attributes `json:"attributes"`
}

// EntityContexts is a batch of entity contexts.
type EntityContexts struct {
	Metadata *Metadata       `json:"metadata"`
	Entities []EntityContext `json:"entities"`
}

// Triples is a batch of graph triples (or quads).
type Triples struct {
	Metadata *Metadata `json:"metadata"`
	Triples  []Triple  `json:"triples"`
}

// TriplesQueryRequest is a triple pattern query: nil S, P or O match
// anything. G selects the graph: nil the default graph, "*" every graph.
// With Streaming set the reply comes in batches of BatchSize triples
// (default 20).
type TriplesQueryRequest struct {
	Collection  string       `json:"collection"`
	S           *Term        `json:"s"`
	P           *Term        `json:"p"`
	O           *Term        `json:"o"`
	G           *string      `json:"g"`
	Limit       int64        `json:"limit"`
	Streaming   bool         `json:"streaming"`
	BatchSize   int64        `json:"batch_size" default:"20"`
	UserContext *UserContext `json:"user_context"`
}

// TriplesQueryResponse is a reply of the triples query service. IsFinal
// (`is_final`, default true) is false on the intermediate batches of a
// streamed reply.
type TriplesQueryResponse struct {
	Error   *Error   `json:"error"`
	Triples []Triple `json:"triples"`
	IsFinal bool     `json:"is_final" default:"true"`
}

// SparqlBinding is one row of a SPARQL SELECT result; Values are in the order
// of SparqlQueryResponse.Variables, nil for an unbound variable.
type SparqlBinding struct {
	Values []*Term `json:"values"`
}

// SparqlQueryRequest is a SPARQL query (queue request:tg:sparql-query). Limit
// defaults to 10000; with Streaming set the reply comes in batches of
// BatchSize bindings (default 20).
type SparqlQueryRequest struct {
	Collection  string       `json:"collection"`
	Query       string       `json:"query"`
	Limit       int64        `json:"limit" default:"10000"`
	Streaming   bool         `json:"streaming"`
	BatchSize   int64        `json:"batch_size" default:"20"`
	UserContext *UserContext `json:"user_context"`
}

// SparqlQueryResponse is a reply of the SPARQL query service (queue
// response:tg:sparql-query). QueryType is "select" (Variables and Bindings
// set), "ask" (AskResult) or "construct" or "describe" (Triples). IsFinal
// (`is_final`, default true) is false on the intermediate batches of a
// streamed reply.
type SparqlQueryResponse struct {
	Error     *Error          `json:"error"`
	QueryType string          `json:"query_type"`
	Variables []string        `json:"variables"`
	Bindings  []SparqlBinding `json:"bindings"`
	AskResult bool            `json:"ask_result"`
	Triples   []Triple        `json:"triples"`
	IsFinal   bool            `json:"is_final" default:"true"`
}
