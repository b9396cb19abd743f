package schema

// Message types of TrustGraph's trustgraph.schema.embeddings module: graph,
// document, object and row embeddings, the embeddings service, the vector
// query services (graph, document and row embeddings), the keyword index and
// the cross-encoder reranker.

// EntityEmbeddings is the embedding vector of one graph entity. ChunkID names
// the chunk it was derived from.
type EntityEmbeddings struct {
	Entity     *Term      `json:"entity"`
	Vector     []float64  `json:"vector"`
	ChunkID    string     `json:"chunk_id"`
	RDFType    []string   `json:"rdf_type"`
	Attributes Attributes `json:"attributes"`
}

// GraphEmbeddings is a batch of entity embeddings.
type GraphEmbeddings struct {
	Metadata *Metadata          `json:"metadata"`
	Entities []EntityEmbeddings `json:"entities"`
}

// ChunkEmbeddings is the embedding vector of one chunk.
type ChunkEmbeddings struct {
	ChunkID    string     `json:"chunk_id"`
	Vector     []float64  `json:"vector"`
	Attributes Attributes `json:"attributes"`
}

// DocumentEmbeddings is a batch of chunk embeddings.
type DocumentEmbeddings struct {
	Metadata *Metadata         `json:"metadata"`
	Chunks   []ChunkEmbeddings `json:"chunks"`
}

// ObjectEmbeddings is the embedding of an object, keyed by its primary key.
type ObjectEmbeddings struct {
	Metadata *Metadata `json:"metadata"`
	Vector   []float64 `json:"vector"`
	Name     string    `json:"name"`
	KeyName  string    `json:"key_name"`
	ID       string    `json:"id"`
}

// StructuredObjectEmbedding is the embedding of a structured object, with
// optional per-field embeddings. ObjectID is the primary key value.
type StructuredObjectEmbedding struct {
	Metadata        *Metadata            `json:"metadata"`
	Vector          []float64            `json:"vector"`
	SchemaName      string               `json:"schema_name"`
	ObjectID        string               `json:"object_id"`
	FieldEmbeddings map[string][]float64 `json:"field_embeddings"`
}

// RowIndexEmbedding is the embedding of one row for one index: IndexName
// names the indexed field(s), IndexValue holds their values and Text is the
// text that was embedded.
type RowIndexEmbedding struct {
	IndexName  string     `json:"index_name"`
	IndexValue []string   `json:"index_value"`
	Text       string     `json:"text"`
	Vector     []float64  `json:"vector"`
	Attributes Attributes `json:"attributes"`
}

// RowEmbeddings is a batch of row index embeddings for one schema.
type RowEmbeddings struct {
	Metadata   *Metadata           `json:"metadata"`
	SchemaName string              `json:"schema_name"`
	Embeddings []RowIndexEmbedding `json:"embeddings"`
}

// EmbeddingsRequest asks the embeddings service for one vector per text.
type EmbeddingsRequest struct {
	Texts []string `json:"texts"`
}

// EmbeddingsResponse is the embeddings service's reply: one vector per text
// of the request, in order.
type EmbeddingsResponse struct {
	Error   *Error      `json:"error"`
	Vectors [][]float64 `json:"vectors"`
}

// GraphEmbeddingsRequest asks the graph embeddings query service for the
// entities nearest to Vector.
type GraphEmbeddingsRequest struct {
	Vector     []float64  `json:"vector"`
	Limit      int64      `json:"limit"`
	Collection string     `json:"collection"`
	RDFType    string     `json:"rdf_type"`
	Attributes Attributes `json:"attributes"`
}

// EntityMatch is an entity found by a semantic search, with its similarity
// score.
type EntityMatch struct {
	Entity     *Term      `json:"entity"`
	Score      float64    `json:"score"`
	RDFType    []string   `json:"rdf_type"`
	Attributes Attributes `json:"attributes"`
}

// GraphEmbeddingsResponse is the graph embeddings query service's reply.
type GraphEmbeddingsResponse struct {
	Error    *Error        `json:"error"`
	Entities []EntityMatch `json:"entities"`
}

// DocumentEmbeddingsRequest asks the document embeddings query service
// (queue request:tg:document-embeddings) for the chunks nearest to Vector.
type DocumentEmbeddingsRequest struct {
	Vector     []float64  `json:"vector"`
	Limit      int64      `json:"limit"`
	Collection string     `json:"collection"`
	Attributes Attributes `json:"attributes"`
}

// ChunkMatch is a chunk found by a search, with its score.
type ChunkMatch struct {
	ChunkID    string     `json:"chunk_id"`
	Score      float64    `json:"score"`
	Attributes Attributes `json:"attributes"`
}

// DocumentEmbeddingsResponse is the document embeddings query service's reply
// (queue response:tg:document-embeddings).
type DocumentEmbeddingsResponse struct {
	Error  *Error       `json:"error"`
	Chunks []ChunkMatch `json:"chunks"`
}

// KeywordIndexRequest is a keyword search of the chunk index (queue
// request:tg:keyword-index).
type KeywordIndexRequest struct {
	Query      string `json:"query"`
	Limit      int64  `json:"limit"`
	Collection string `json:"collection"`
}

// KeywordIndexResponse is the keyword index's reply (queue
// response:tg:keyword-index).
type KeywordIndexResponse struct {
	Error  *Error       `json:"error"`
	Chunks []ChunkMatch `json:"chunks"`
}

// RowIndexMatch is a row index found by a semantic search, with its score.
type RowIndexMatch struct {
	IndexName  string     `json:"index_name"`
	IndexValue []string   `json:"index_value"`
	Text       string     `json:"text"`
	Score      float64    `json:"score"`
	Attributes Attributes `json:"attributes"`
}

// RowEmbeddingsRequest is a semantic search of row embeddings (queue
// request:tg:row-embeddings). Limit defaults to 10; IndexName optionally
// restricts the search to one index.
type RowEmbeddingsRequest struct {
	Vector     []float64  `json:"vector"`
	Limit      int64      `json:"limit" default:"10"`
	Collection string     `json:"collection"`
	SchemaName string     `json:"schema_name"`
	IndexName  *string    `json:"index_name"`
	Attributes Attributes `json:"attributes"`
}

// RowEmbeddingsResponse is the row embeddings query service's reply (queue
// response:tg:row-embeddings).
type RowEmbeddingsResponse struct {
	Error   *Error          `json:"error"`
	Matches []RowIndexMatch `json:"matches"`
}

// RerankerQuery is one query given to the cross-encoder reranker.
type RerankerQuery struct {
	QueryID   string `json:"query_id"`
	QueryText string `json:"query_text"`
}

// RerankerDocument is one candidate document given to the reranker.
type RerankerDocument struct {
	DocumentID   string `json:"document_id"`
	DocumentText string `json:"document_text"`
}

// RerankerRequest asks the cross-encoder reranker to score documents against
// queries. Limit defaults to 10.
type RerankerRequest struct {
	Queries   []RerankerQuery    `json:"queries"`
	Documents []RerankerDocument `json:"documents"`
	Limit     int64              `json:"limit" default:"10"`
}

// RerankerResult is the score of one document against one query.
type RerankerResult struct {
	DocumentID string  `json:"document_id"`
	QueryID    string  `json:"query_id"`
	Score      float64 `json:"score"`
}

// RerankerResponse is the reranker's reply.
type RerankerResponse struct {
	Error   *Error           `json:"error"`
	Results []RerankerResult `json:"results"`
}
