package schema

// Core message types of TrustGraph's trustgraph.schema.core package
// (primitives and metadata): errors, RDF terms and triples, row schemas and
// the metadata carried by pipeline messages.

// Term types: the values of Term.Type.
const (
	IRI     = "i" // an IRI node: Term.IRI is set
	BLANK   = "b" // a blank node: Term.ID is set
	LITERAL = "l" // a literal: Term.Value, and Term.Datatype or Term.Language
	TRIPLE  = "t" // a quoted triple (RDF-star): Term.Triple is set
)

// Error is the error a service returns in the `error` field of a response.
// Type names the kind of failure (e.g. "llm-error", "too-many-requests") and
// Message describes it.
type Error struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// Term is an RDF term: an IRI, a blank node, a literal or a quoted triple.
// Type (one of IRI, BLANK, LITERAL, TRIPLE) says which other fields are
// used: IRI for an IRI, ID for a blank node, Value with Datatype or Language
// for a literal, Triple for a quoted triple.
type Term struct {
	Type     string  `json:"type"`
	IRI      string  `json:"iri"`
	ID       string  `json:"id"`
	Value    string  `json:"value"`
	Datatype string  `json:"datatype"` // XSD datatype IRI; not set with Language
	Language string  `json:"language"` // language tag; not set with Datatype
	Triple   *Triple `json:"triple"`
}

// Triple is an RDF triple, or a quad when G names a graph. A nil G is the
// default graph.
type Triple struct {
	S *Term   `json:"s"`
	P *Term   `json:"p"`
	O *Term   `json:"o"`
	G *string `json:"g"`
}

// Field describes one field of a RowSchema. Type is one of int, string,
// long, bool, float, double or timestamp; EnumValues lists the allowed values
// of an enum field.
type Field struct {
	Name        string   `json:"name"`
	Type        string   `json:"type"`
	Size        int64    `json:"size"`
	Primary     bool     `json:"primary"`
	Description string   `json:"description"`
	Required    bool     `json:"required"`
	EnumValues  []string `json:"enum_values"`
	Indexed     bool     `json:"indexed"`
}

// RowSchema describes the rows of a structured data table.
type RowSchema struct {
	Name        string  `json:"name"`
	Description string  `json:"description"`
	Fields      []Field `json:"fields"`
}

// Metadata travels with pipeline messages. ID identifies the source, Root
// the document it came from (set by the librarian and kept through the
// pipeline), and Collection the collection the message belongs to.
type Metadata struct {
	ID         string `json:"id"`
	Root       string `json:"root"`
	Collection string `json:"collection"`
}
