package schema

// The fixed queues of a TrustGraph deployment: the services that are not
// part of a flow and are reached under one well-known name. They are written
// in class form (class:topicspace:topic) with the topicspace "tg", exactly as
// trustgraph.schema names them; each comment gives that name.
//
// Queues that belong to a flow are named by the flow blueprint in the
// configuration service instead, per workspace and flow, for example
// flow:tg:triples-store:ws1:default; FlowQueue builds such a name.

func classTopic(class Class, queue string) Topic {
	q := QoS0
	if class == ClassFlow {
		q = QoS1
	}
	return Topic{QoS: q, Tenant: DefaultTenant, Namespace: string(class), Queue: queue}
}

var (
	// ConfigRequestQueue carries ConfigRequest: request:tg:config.
	ConfigRequestQueue = classTopic(ClassRequest, "config")
	// ConfigResponseQueue carries ConfigResponse: response:tg:config.
	ConfigResponseQueue = classTopic(ClassResponse, "config")
	// ConfigPushQueue carries ConfigPush notifications: notify:tg:config.
	ConfigPushQueue = classTopic(ClassNotify, "config")

	// FlowRequestQueue carries FlowRequest: request:tg:flow.
	FlowRequestQueue = classTopic(ClassRequest, "flow")
	// FlowResponseQueue carries FlowResponse: response:tg:flow.
	FlowResponseQueue = classTopic(ClassResponse, "flow")

	// CollectionRequestQueue carries CollectionManagementRequest: request:tg:collection.
	CollectionRequestQueue = classTopic(ClassRequest, "collection")
	// CollectionResponseQueue carries CollectionManagementResponse: response:tg:collection.
	CollectionResponseQueue = classTopic(ClassResponse, "collection")

	// LibrarianRequestQueue carries LibrarianRequest: request:tg:librarian.
	LibrarianRequestQueue = classTopic(ClassRequest, "librarian")
	// LibrarianResponseQueue carries LibrarianResponse: response:tg:librarian.
	LibrarianResponseQueue = classTopic(ClassResponse, "librarian")

	// KnowledgeRequestQueue carries KnowledgeRequest: request:tg:knowledge.
	KnowledgeRequestQueue = classTopic(ClassRequest, "knowledge")
	// KnowledgeResponseQueue carries KnowledgeResponse: response:tg:knowledge.
	KnowledgeResponseQueue = classTopic(ClassResponse, "knowledge")

	// IAMRequestQueue carries IAMRequest: request:tg:iam.
	IAMRequestQueue = classTopic(ClassRequest, "iam")
	// IAMResponseQueue carries IAMResponse: response:tg:iam.
	IAMResponseQueue = classTopic(ClassResponse, "iam")

	// DocumentEmbeddingsRequestQueue carries DocumentEmbeddingsRequest:
	// request:tg:document-embeddings.
	DocumentEmbeddingsRequestQueue = classTopic(ClassRequest, "document-embeddings")
	// DocumentEmbeddingsResponseQueue carries DocumentEmbeddingsResponse:
	// response:tg:document-embeddings.
	DocumentEmbeddingsResponseQueue = classTopic(ClassResponse, "document-embeddings")

	// KeywordIndexRequestQueue carries KeywordIndexRequest: request:tg:keyword-index.
	KeywordIndexRequestQueue = classTopic(ClassRequest, "keyword-index")
	// KeywordIndexResponseQueue carries KeywordIndexResponse: response:tg:keyword-index.
	KeywordIndexResponseQueue = classTopic(ClassResponse, "keyword-index")

	// RowEmbeddingsRequestQueue carries RowEmbeddingsRequest: request:tg:row-embeddings.
	RowEmbeddingsRequestQueue = classTopic(ClassRequest, "row-embeddings")
	// RowEmbeddingsResponseQueue carries RowEmbeddingsResponse: response:tg:row-embeddings.
	RowEmbeddingsResponseQueue = classTopic(ClassResponse, "row-embeddings")

	// SparqlQueryRequestQueue carries SparqlQueryRequest: request:tg:sparql-query.
	SparqlQueryRequestQueue = classTopic(ClassRequest, "sparql-query")
	// SparqlQueryResponseQueue carries SparqlQueryResponse: response:tg:sparql-query.
	SparqlQueryResponseQueue = classTopic(ClassResponse, "sparql-query")

	// ClozeRequestQueue carries ClozeRequest: request:tg:cloze.
	ClozeRequestQueue = classTopic(ClassRequest, "cloze")
	// ClozeResponseQueue carries ClozeResponse: response:tg:cloze.
	ClozeResponseQueue = classTopic(ClassResponse, "cloze")

	// DecisionScoringRequestQueue carries DecisionScoringRequest:
	// request:tg:decision-scoring.
	DecisionScoringRequestQueue = classTopic(ClassRequest, "decision-scoring")
	// DecisionScoringResponseQueue carries DecisionScoringResponse:
	// response:tg:decision-scoring.
	DecisionScoringResponseQueue = classTopic(ClassResponse, "decision-scoring")

	// FieldExtractionRequestQueue carries FieldExtractionRequest:
	// request:tg:field-extraction.
	FieldExtractionRequestQueue = classTopic(ClassRequest, "field-extraction")
	// FieldExtractionResponseQueue carries FieldExtractionResponse:
	// response:tg:field-extraction.
	FieldExtractionResponseQueue = classTopic(ClassResponse, "field-extraction")

	// AuditEventsQueue carries AuditEvent broadcasts: notify:tg:audit-events.
	AuditEventsQueue = classTopic(ClassNotify, "audit-events")
	// PolicyEventsQueue carries PolicyEvent broadcasts: notify:tg:policy-events.
	PolicyEventsQueue = classTopic(ClassNotify, "policy-events")
)

// FixedQueues returns every fixed queue keyed by the name of the variable
// trustgraph.schema defines it as (e.g. "config_request_queue"). The map is
// a fresh copy on each call.
func FixedQueues() map[string]Topic {
	return map[string]Topic{
		"config_request_queue":               ConfigRequestQueue,
		"config_response_queue":              ConfigResponseQueue,
		"config_push_queue":                  ConfigPushQueue,
		"flow_request_queue":                 FlowRequestQueue,
		"flow_response_queue":                FlowResponseQueue,
		"collection_request_queue":           CollectionRequestQueue,
		"collection_response_queue":          CollectionResponseQueue,
		"librarian_request_queue":            LibrarianRequestQueue,
		"librarian_response_queue":           LibrarianResponseQueue,
		"knowledge_request_queue":            KnowledgeRequestQueue,
		"knowledge_response_queue":           KnowledgeResponseQueue,
		"iam_request_queue":                  IAMRequestQueue,
		"iam_response_queue":                 IAMResponseQueue,
		"document_embeddings_request_queue":  DocumentEmbeddingsRequestQueue,
		"document_embeddings_response_queue": DocumentEmbeddingsResponseQueue,
		"keyword_index_request_queue":        KeywordIndexRequestQueue,
		"keyword_index_response_queue":       KeywordIndexResponseQueue,
		"row_embeddings_request_queue":       RowEmbeddingsRequestQueue,
		"row_embeddings_response_queue":      RowEmbeddingsResponseQueue,
		"sparql_query_request_queue":         SparqlQueryRequestQueue,
		"sparql_query_response_queue":        SparqlQueryResponseQueue,
		"cloze_request_queue":                ClozeRequestQueue,
		"cloze_response_queue":               ClozeResponseQueue,
		"decision_scoring_request_queue":     DecisionScoringRequestQueue,
		"decision_scoring_response_queue":    DecisionScoringResponseQueue,
		"field_extraction_request_queue":     FieldExtractionRequestQueue,
		"field_extraction_response_queue":    FieldExtractionResponseQueue,
		"audit_events_queue":                 AuditEventsQueue,
		"policy_events_queue":                PolicyEventsQueue,
	}
}

// FlowQueue returns the queue of t as deployed for one flow of one
// workspace: its queue part gets ":" + workspace + ":" + flow appended, the
// way TrustGraph flow blueprints name per-flow queues (e.g.
// flow:tg:triples-store becomes flow:tg:triples-store:ws1:default). An empty
// flow appends the workspace alone. The result is not validated; call
// Validate when workspace or flow come from outside.
func FlowQueue(t Topic, workspace, flow string) Topic {
	t = t.WithQueueSuffix(workspace)
	if flow != "" {
		t = t.WithQueueSuffix(flow)
	}
	return t
}
