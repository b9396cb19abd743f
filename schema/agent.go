package schema

// Message types of TrustGraph's trustgraph.schema.agent module: the agent
// service, dynamically configured tool services, and passthrough.

// PlanStep is one step of a plan-then-execute agent plan. DependsOn holds the
// indices of prerequisite steps; Status is "pending" (the default),
// "running", "completed" or "failed".
type PlanStep struct {
	Goal      string  `json:"goal"`
	ToolHint  string  `json:"tool_hint"`
	DependsOn []int64 `json:"depends_on"`
	Status    string  `json:"status" default:"pending"`
	Result    string  `json:"result"`
}

// AgentStep is one step of an agent's history. StepType is "react", "plan",
// "execute", "decompose" or "synthesise"; SubagentResults are keyed by goal.
type AgentStep struct {
	Thought         string            `json:"thought"`
	Action          string            `json:"action"`
	Arguments       map[string]string `json:"arguments"`
	Observation     string            `json:"observation"`
	StepType        string            `json:"step_type"`
	Plan            []PlanStep        `json:"plan"`
	SubagentResults map[string]string `json:"subagent_results"`
}

// AgentRequest is a question for the agent service. Collection defaults to
// "default". Pattern selects "react", "plan-then-execute" or "supervisor";
// the correlation fields link subagents to the supervisor that fanned them
// out.
type AgentRequest struct {
	Question         string      `json:"question"`
	State            string      `json:"state"`
	Group            *[]string   `json:"group"`
	History          []AgentStep `json:"history"`
	Collection       string      `json:"collection" default:"default"`
	Streaming        bool        `json:"streaming"`
	SessionID        string      `json:"session_id"`
	ConversationID   string      `json:"conversation_id"`
	Pattern          string      `json:"pattern"`
	TaskType         string      `json:"task_type"`
	Framing          string      `json:"framing"`
	CorrelationID    string      `json:"correlation_id"`
	ParentSessionID  string      `json:"parent_session_id"`
	SubagentGoal     string      `json:"subagent_goal"`
	ExpectedSiblings int64       `json:"expected_siblings"`
}

// AgentResponse is one message of the agent's streamed reply. MessageType is
// "thought", "action", "observation", "answer", "explain" or "error".
// EndOfMessage (`end_of_message`) ends the current chunk of one type;
// EndOfDialog (`end_of_dialog`) ends the whole reply, and that message carries
// the token usage.
type AgentResponse struct {
	MessageType    string   `json:"message_type"`
	Content        string   `json:"content"`
	EndOfMessage   bool     `json:"end_of_message"`
	EndOfDialog    bool     `json:"end_of_dialog"`
	ExplainID      *string  `json:"explain_id"`
	ExplainGraph   *string  `json:"explain_graph"`
	ExplainTriples []Triple `json:"explain_triples"`
	MessageID      string   `json:"message_id"`
	Error          *Error   `json:"error"`
	InToken        *int64   `json:"in_token"`
	OutToken       *int64   `json:"out_token"`
	Model          *string  `json:"model"`
}

// ToolServiceRequest is a call of a dynamically configured tool service.
// Config and Arguments are JSON-encoded.
type ToolServiceRequest struct {
	Config    string `json:"config"`
	Arguments string `json:"arguments"`
}

// ToolServiceResponse is a tool service's reply; Response is the
// observation. A streamed reply ends with EndOfStream (`end_of_stream`) set.
type ToolServiceResponse struct {
	Error       *Error `json:"error"`
	Response    string `json:"response"`
	EndOfStream bool   `json:"end_of_stream"`
}

// PassthroughRequest carries an arbitrary JSON object to a passthrough
// service.
type PassthroughRequest struct {
	Payload map[string]any `json:"payload"`
}

// PassthroughResponse is a passthrough service's reply. IsFinal (`is_final`,
// default true) marks the last reply to a request.
type PassthroughResponse struct {
	Payload map[string]any `json:"payload"`
	Error   *Error         `json:"error"`
	IsFinal bool           `json:"is_final" default:"true"`
}
