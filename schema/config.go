package schema

// Message types of TrustGraph's trustgraph.schema.config module: the
// configuration service and its push notifications, the flow service and
// collection management.

// ConfigKey names one configuration item: its type and key.
type ConfigKey struct {
	Type string `json:"type"`
	Key  string `json:"key"`
}

// ConfigValue is one configuration item. Workspace is set only in replies to
// getvalues-all-ws.
type ConfigValue struct {
	Type      string `json:"type"`
	Key       string `json:"key"`
	Value     string `json:"value"`
	Workspace string `json:"workspace"`
}

// ConfigRequest is a request to the configuration service (queue
// request:tg:config). Operations: get, list, getvalues, getvalues-all-ws,
// getkeys-all-ws, delete, put, config. Workspace is required by every
// operation except getvalues-all-ws.
type ConfigRequest struct {
	Operation string        `json:"operation"`
	Workspace string        `json:"workspace"`
	Keys      []ConfigKey   `json:"keys"`
	Type      string        `json:"type"`
	Values    []ConfigValue `json:"values"`
}

// ConfigResponse is the configuration service's reply (queue
// response:tg:config). Config maps type to key to value.
type ConfigResponse struct {
	Version   int64                        `json:"version"`
	Values    []ConfigValue                `json:"values"`
	Directory []string                     `json:"directory"`
	Config    map[string]map[string]string `json:"config"`
	Error     *Error                       `json:"error"`
}

// WorkspaceChanges lists the workspaces created and deleted.
type WorkspaceChanges struct {
	Created []string `json:"created"`
	Deleted []string `json:"deleted"`
}

// ConfigPush announces a new configuration version (queue notify:tg:config).
// Changes maps each changed configuration type to the workspaces affected.
type ConfigPush struct {
	Version          int64               `json:"version"`
	Changes          map[string][]string `json:"changes"`
	WorkspaceChanges *WorkspaceChanges   `json:"workspace_changes"`
}

// FlowRequest is a request to the flow service (queue request:tg:flow).
// Operations: list-blueprints, get-blueprint, put-blueprint,
// delete-blueprint, list-flows, get-flow, start-flow, stop-flow. Parameters
// customize a flow being started.
type FlowRequest struct {
	Operation           string            `json:"operation"`
	BlueprintName       string            `json:"blueprint_name"`
	BlueprintDefinition string            `json:"blueprint_definition"`
	Description         string            `json:"description"`
	FlowID              string            `json:"flow_id"`
	Parameters          map[string]string `json:"parameters"`
}

// FlowResponse is the flow service's reply (queue response:tg:flow).
type FlowResponse struct {
	BlueprintNames      []string          `json:"blueprint_names"`
	FlowIDs             []string          `json:"flow_ids"`
	BlueprintDefinition string            `json:"blueprint_definition"`
	Flow                string            `json:"flow"`
	Description         string            `json:"description"`
	Parameters          map[string]string `json:"parameters"`
	Error               *Error            `json:"error"`
}

// CollectionMetadata describes a collection.
type CollectionMetadata struct {
	Collection  string   `json:"collection"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Tags        []string `json:"tags"`
}

// CollectionManagementRequest is a request to the collection management
// service (queue request:tg:collection). Operations: list-collections,
// update-collection, delete-collection. Timestamp is ISO 8601; TagFilter and
// Limit apply to list-collections.
type CollectionManagementRequest struct {
	Operation   string   `json:"operation"`
	Collection  string   `json:"collection"`
	Timestamp   string   `json:"timestamp"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Tags        []string `json:"tags"`
	TagFilter   []string `json:"tag_filter"`
	Limit       int64    `json:"limit"`
}

// CollectionManagementResponse is the collection management service's reply
// (queue response:tg:collection).
type CollectionManagementResponse struct {
	Error       *Error               `json:"error"`
	Timestamp   string               `json:"timestamp"`
	Collections []CollectionMetadata `json:"collections"`
}
