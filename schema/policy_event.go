package schema

// Message types of TrustGraph's trustgraph.schema.policy_event module.

// PolicyEvent is one policy audit event, broadcast on notify:tg:policy-events.
// SchemaVersion defaults to 1; PayloadJSON is the JSON-encoded event body.
type PolicyEvent struct {
	SchemaVersion int64  `json:"schema_version" default:"1"`
	EventID       string `json:"event_id"`
	EventType     string `json:"event_type"`
	Timestamp     string `json:"timestamp"`
	Producer      string `json:"producer"`
	PayloadJSON   string `json:"payload_json"`
}
