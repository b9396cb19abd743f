package schema

// Message types of TrustGraph's trustgraph.schema.documents module: documents
// and chunks on their way through the pipeline, NLP extraction records, the
// knowledge-core service and the librarian service.

// Attributes is a free-form attribute map carried by chunks, embeddings and
// entity contexts (Python dict[str, str | list[str]]). Each value is a string
// or a list of strings; after decoding a list arrives as []any holding strings.
type Attributes map[string]any

// Document is a source document (for example a PDF) entering the pipeline.
// When DocumentID is set the receiver fetches the content from the librarian
// instead of using Data.
type Document struct {
	Metadata   *Metadata `json:"metadata"`
	Data       Bytes     `json:"data"`
	DocumentID string    `json:"document_id"`
}

// TextDocument is the text of a document, for instance after PDF decoding.
// When DocumentID is set the receiver fetches the text from the librarian
// instead of using Text.
type TextDocument struct {
	Metadata   *Metadata `json:"metadata"`
	Text       Bytes     `json:"text"`
	DocumentID string    `json:"document_id"`
}

// Chunk is one chunk of text cut from a document. DocumentID names the chunk
// in the librarian, for provenance; the content travels in Chunk as well.
type Chunk struct {
	Metadata   *Metadata  `json:"metadata"`
	Chunk      Bytes      `json:"chunk"`
	DocumentID string     `json:"document_id"`
	Attributes Attributes `json:"attributes"`
}

// Definition is an NLP extraction record: a term and its definition.
type Definition struct {
	Name       string `json:"name"`
	Definition string `json:"definition"`
}

// NLPTopic is an NLP extraction record: a topic and its definition. It is the
// Python dataclass named Topic, renamed here because Topic names a queue.
type NLPTopic struct {
	Name       string `json:"name"`
	Definition string `json:"definition"`
}

// Relationship is an NLP extraction record: subject, predicate and object as
// text; OEntity says whether the object is an entity rather than a literal.
type Relationship struct {
	S       string `json:"s"`
	P       string `json:"p"`
	O       string `json:"o"`
	OEntity bool   `json:"o_entity"`
}

// Fact is an NLP extraction record: subject, predicate and object as text.
type Fact struct {
	S string `json:"s"`
	P string `json:"p"`
	O string `json:"o"`
}

// LibraryMetadata describes a librarian document stored with a knowledge
// core (source material of put-kg-core).
type LibraryMetadata struct {
	ID           string   `json:"id"`
	Kind         string   `json:"kind"`
	Title        string   `json:"title"`
	ParentID     string   `json:"parent_id"`
	DocumentType string   `json:"document_type"`
	Comments     string   `json:"comments"`
	Tags         []string `json:"tags"`
}

// LibraryBlob is the content of a librarian document stored with a
// knowledge core.
type LibraryBlob struct {
	ID   string `json:"id"`
	Data Bytes  `json:"data"`
}

// KnowledgeRequest is a request to the knowledge-core service (queue
// request:tg:knowledge). Operations: get-kg-core, delete-kg-core,
// list-kg-cores, put-kg-core, load-kg-core, unload-kg-core, and for document
// embeddings cores get-de-core, put-de-core, list-de-cores, delete-de-core,
// load-de-core.
type KnowledgeRequest struct {
	Operation          string              `json:"operation"`
	ID                 string              `json:"id"`
	Flow               string              `json:"flow"`
	Collection         string              `json:"collection"`
	Triples            *Triples            `json:"triples"`
	GraphEmbeddings    *GraphEmbeddings    `json:"graph_embeddings"`
	DocumentEmbeddings *DocumentEmbeddings `json:"document_embeddings"`
	LibraryMetadata    *LibraryMetadata    `json:"library_metadata"`
	LibraryBlob        *LibraryBlob        `json:"library_blob"`
}

// KnowledgeResponse is a reply of the knowledge-core service (queue
// response:tg:knowledge). A get-kg-core or get-de-core reply is a stream of
// responses that ends with EOS (`eos`) set.
type KnowledgeResponse struct {
	Error              *Error              `json:"error"`
	IDs                *[]string           `json:"ids"`
	EOS                bool                `json:"eos"`
	Triples            *Triples            `json:"triples"`
	GraphEmbeddings    *GraphEmbeddings    `json:"graph_embeddings"`
	DocumentEmbeddings *DocumentEmbeddings `json:"document_embeddings"`
	LibraryMetadata    *LibraryMetadata    `json:"library_metadata"`
	LibraryBlob        *LibraryBlob        `json:"library_blob"`
}

// DocumentMetadata describes a document held by the librarian. DocumentType
// is one of "source" (the default), "page", "chunk" or the legacy
// "extracted"; ParentID is empty for top-level documents.
type DocumentMetadata struct {
	ID           string   `json:"id"`
	Time         int64    `json:"time"`
	Kind         string   `json:"kind"`
	Title        string   `json:"title"`
	Comments     string   `json:"comments"`
	Metadata     []Triple `json:"metadata"`
	Tags         []string `json:"tags"`
	ParentID     string   `json:"parent_id"`
	DocumentType string   `json:"document_type" default:"source"`
}

// ProcessingMetadata describes a processing job: a document submitted to a
// flow for a collection.
type ProcessingMetadata struct {
	ID         string   `json:"id"`
	DocumentID string   `json:"document_id"`
	Time       int64    `json:"time"`
	Flow       string   `json:"flow"`
	Collection string   `json:"collection"`
	Tags       []string `json:"tags"`
}

// Criteria is one search criterion of a librarian request.
type Criteria struct {
	Key      string `json:"key"`
	Value    string `json:"value"`
	Operator string `json:"operator"`
}

// UploadProgress is the progress of a chunked upload.
type UploadProgress struct {
	UploadID       string `json:"upload_id"`
	ChunksReceived int64  `json:"chunks_received"`
	TotalChunks    int64  `json:"total_chunks"`
	BytesReceived  int64  `json:"bytes_received"`
	TotalBytes     int64  `json:"total_bytes"`
}

// UploadSession describes a chunked upload in progress.
// DocumentMetadataJSON is a JSON-encoded DocumentMetadata.
type UploadSession struct {
	UploadID             string `json:"upload_id"`
	DocumentID           string `json:"document_id"`
	DocumentMetadataJSON string `json:"document_metadata_json"`
	TotalSize            int64  `json:"total_size"`
	ChunkSize            int64  `json:"chunk_size"`
	TotalChunks          int64  `json:"total_chunks"`
	ChunksReceived       int64  `json:"chunks_received"`
	CreatedAt            string `json:"created_at"`
}

// LibrarianRequest is a request to the librarian service (queue
// request:tg:librarian). Operations: add-document, add-child-document,
// remove-document, update-document, get-document-metadata,
// get-document-content, stream-document, list-documents, list-children,
// add-processing, remove-processing, list-processing, begin-upload,
// upload-chunk, complete-upload, abort-upload, get-upload-status,
// list-uploads.
type LibrarianRequest struct {
	Operation          string              `json:"operation"`
	DocumentID         string              `json:"document_id"`
	ProcessingID       string              `json:"processing_id"`
	DocumentMetadata   *DocumentMetadata   `json:"document_metadata"`
	ProcessingMetadata *ProcessingMetadata `json:"processing_metadata"`
	Content            Bytes               `json:"content"`
	Collection         string              `json:"collection"`
	Criteria           []Criteria          `json:"criteria"`
	TotalSize          int64               `json:"total_size"`
	ChunkSize          int64               `json:"chunk_size"`
	UploadID           string              `json:"upload_id"`
	ChunkIndex         int64               `json:"chunk_index"`
	IncludeChildren    bool                `json:"include_children"`
}

// LibrarianResponse is a reply of the librarian service (queue
// response:tg:librarian). IsFinal (`is_final`, default true) marks the last
// reply to a request; only stream-document sends intermediate replies with it
// false. UploadState is "in-progress", "completed" or "expired".
type LibrarianResponse struct {
	Error               *Error               `json:"error"`
	DocumentMetadata    *DocumentMetadata    `json:"document_metadata"`
	Content             Bytes                `json:"content"`
	DocumentMetadatas   []DocumentMetadata   `json:"document_metadatas"`
	ProcessingMetadatas []ProcessingMetadata `json:"processing_metadatas"`
	UploadID            string               `json:"upload_id"`
	ChunkSize           int64                `json:"chunk_size"`
	TotalChunks         int64                `json:"total_chunks"`
	ChunkIndex          int64                `json:"chunk_index"`
	ChunksReceived      int64                `json:"chunks_received"`
	BytesReceived       int64                `json:"bytes_received"`
	TotalBytes          int64                `json:"total_bytes"`
	DocumentID          string               `json:"document_id"`
	ObjectID            string               `json:"object_id"`
	UploadState         string               `json:"upload_state"`
	ReceivedChunks      []int64              `json:"received_chunks"`
	MissingChunks       []int64              `json:"missing_chunks"`
	UploadSessions      []UploadSession      `json:"upload_sessions"`
	IsFinal             bool                 `json:"is_final" default:"true"`
}
