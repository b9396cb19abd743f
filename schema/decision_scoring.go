package schema

// Message types of TrustGraph's trustgraph.schema.decision_scoring module.

// DecisionScoringRequest is a request to the decision scoring service (queue
// request:tg:decision-scoring): free-form state and the questions to score.
type DecisionScoringRequest struct {
	State     map[string]any `json:"state"`
	Questions map[string]any `json:"questions"`
}

// DecisionScoringResponse is the decision scoring service's reply (queue
// response:tg:decision-scoring).
type DecisionScoringResponse struct {
	Error   *Error         `json:"error"`
	Answers map[string]any `json:"answers"`
	Model   string         `json:"model"`
}
