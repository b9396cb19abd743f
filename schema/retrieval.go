package schema

// Message types of TrustGraph's trustgraph.schema.retrieval module: graph RAG,
// document RAG and lookups.

// TraversalStep is one step of a guided graph traversal: the entity types,
// relationships and graphs it may follow.
type TraversalStep struct {
	Types         []string `json:"types"`
	Relationships []string `json:"relationships"`
	Graphs        []string `json:"graphs"`
}

// GraphRagQuery is a question answered by graph RAG. The limits bound the
// entities, triples, subgraph and reranker input used; zero means the
// service's default. Graph optionally restricts the query to one named graph.
type GraphRagQuery struct {
	Query                 string          `json:"query"`
	Collection            string          `json:"collection"`
	EntityLimit           int64           `json:"entity_limit"`
	TripleLimit           int64           `json:"triple_limit"`
	MaxSubgraphSize       int64           `json:"max_subgraph_size"`
	MaxPathLength         int64           `json:"max_path_length"`
	EdgeScoreLimit        int64           `json:"edge_score_limit"`
	EdgeLimit             int64           `json:"edge_limit"`
	MaxRerankerInput      int64           `json:"max_reranker_input"`
	Streaming             bool            `json:"streaming"`
	ParentURI             string          `json:"parent_uri"`
	UserContext           *UserContext    `json:"user_context"`
	GroundingSeeds        []string        `json:"grounding_seeds"`
	GraphSeeds            []string        `json:"graph_seeds"`
	Languages             []string        `json:"languages"`
	TraversalInstructions []TraversalStep `json:"traversal_instructions"`
	Graph                 *string         `json:"graph"`
}

// Source is a source document cited by a RAG answer. Title is empty when the
// document has none.
type Source struct {
	URI   string `json:"uri"`
	Title string `json:"title"`
}

// GraphRagResponse is one message of a graph RAG reply. MessageType is
// "chunk" (answer text) or "explain" (provenance in ExplainTriples).
// EndOfStream (`end_of_stream`) ends the answer text; EndOfSession
// (`end_of_session`) ends the whole reply. Sources come on the final message.
type GraphRagResponse struct {
	Error          *Error   `json:"error"`
	Response       string   `json:"response"`
	EndOfStream    bool     `json:"end_of_stream"`
	ExplainID      *string  `json:"explain_id"`
	ExplainGraph   *string  `json:"explain_graph"`
	ExplainTriples []Triple `json:"explain_triples"`
	MessageType    string   `json:"message_type"`
	EndOfSession   bool     `json:"end_of_session"`
	InToken        *int64   `json:"in_token"`
	OutToken       *int64   `json:"out_token"`
	Model          *string  `json:"model"`
	Sources        []Source `json:"sources"`
}

// DocumentRagQuery is a question answered by document RAG. DocLimit is the
// number of chunks put into the prompt; FetchLimit the candidate pool fetched
// before reranking (zero: derived from DocLimit).
type DocumentRagQuery struct {
	Query      string `json:"query"`
	Collection string `json:"collection"`
	DocLimit   int64  `json:"doc_limit"`
	FetchLimit int64  `json:"fetch_limit"`
	Streaming  bool   `json:"streaming"`
}

// DocumentRagResponse is one message of a document RAG reply. MessageType is
// "chunk" or "explain". EndOfStream (`end_of_stream`) ends the answer text;
// EndOfSession (`end_of_session`) ends the whole reply. Response is optional
// in Python with the default "" (not None): a missing key means "".
type DocumentRagResponse struct {
	Error          *Error   `json:"error"`
	Response       *string  `json:"response" default:""`
	EndOfStream    bool     `json:"end_of_stream"`
	ExplainID      *string  `json:"explain_id"`
	ExplainGraph   *string  `json:"explain_graph"`
	ExplainTriples []Triple `json:"explain_triples"`
	MessageType    string   `json:"message_type"`
	EndOfSession   bool     `json:"end_of_session"`
	InToken        *int64   `json:"in_token"`
	OutToken       *int64   `json:"out_token"`
	Model          *string  `json:"model"`
}

// LookupRequest asks the lookup service about Term, of the given Kind.
type LookupRequest struct {
	Kind string `json:"kind"`
	Term string `json:"term"`
}

// LookupResponse is the lookup service's reply.
type LookupResponse struct {
	Text  string `json:"text"`
	Error *Error `json:"error"`
}
