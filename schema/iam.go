package schema

// Message types of TrustGraph's trustgraph.schema.iam module: the identity
// and access management service.

// UserInput describes a user to create or update. Password is set only on
// create-user. Enabled defaults to true.
type UserInput struct {
	Username           string   `json:"username"`
	Name               string   `json:"name"`
	Email              string   `json:"email"`
	Password           string   `json:"password"`
	Roles              []string `json:"roles"`
	Enabled            bool     `json:"enabled" default:"true"`
	MustChangePassword bool     `json:"must_change_password"`
}

// UserRecord is a stored user. Enabled defaults to true.
type UserRecord struct {
	ID                 string   `json:"id"`
	DefaultWorkspace   string   `json:"default_workspace"`
	Username           string   `json:"username"`
	Name               string   `json:"name"`
	Email              string   `json:"email"`
	Roles              []string `json:"roles"`
	Enabled            bool     `json:"enabled" default:"true"`
	MustChangePassword bool     `json:"must_change_password"`
	Created            string   `json:"created"`
}

// WorkspaceInput describes a workspace to create or update. Enabled defaults
// to true.
type WorkspaceInput struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Enabled bool   `json:"enabled" default:"true"`
}

// WorkspaceRecord is a stored workspace. Enabled defaults to true.
type WorkspaceRecord struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Enabled bool   `json:"enabled" default:"true"`
	Created string `json:"created"`
}

// APIKeyInput describes an API key to create.
type APIKeyInput struct {
	UserID  string `json:"user_id"`
	Name    string `json:"name"`
	Expires string `json:"expires"`
}

// APIKeyRecord is a stored API key (never its secret); Prefix identifies it.
type APIKeyRecord struct {
	ID       string `json:"id"`
	UserID   string `json:"user_id"`
	Name     string `json:"name"`
	Prefix   string `json:"prefix"`
	Expires  string `json:"expires"`
	Created  string `json:"created"`
	LastUsed string `json:"last_used"`
}

// GroupInput describes a group to create or update. Enabled defaults to true.
type GroupInput struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Enabled     bool   `json:"enabled" default:"true"`
}

// GrantInput is a capability granted in a workspace.
type GrantInput struct {
	Capability string `json:"capability"`
	Workspace  string `json:"workspace"`
}

// IAMRequest is a request to the IAM service (queue request:tg:iam).
// Operations: bootstrap, bootstrap-status, whoami, authenticate-anonymous,
// login, resolve-api-key, authorise, authorise-many, mint-token,
// create-user, list-users, get-user, update-user, disable-user, enable-user,
// delete-user, change-password, reset-password, create-api-key,
// list-api-keys, revoke-api-key, create-workspace, list-workspaces,
// list-my-workspaces, get-workspace, update-workspace, disable-workspace,
// get-signing-key-public, rotate-signing-key, and the group and grant
// operations of enterprise deployments. RequestID and ClientIP are echoed
// into audit events; the *JSON fields are JSON-encoded documents.
type IAMRequest struct {
	Operation       string          `json:"operation"`
	Workspace       string          `json:"workspace"`
	Actor           string          `json:"actor"`
	UserID          string          `json:"user_id"`
	Username        string          `json:"username"`
	KeyID           string          `json:"key_id"`
	APIKey          string          `json:"api_key"`
	Password        string          `json:"password"`
	NewPassword     string          `json:"new_password"`
	User            *UserInput      `json:"user"`
	WorkspaceRecord *WorkspaceInput `json:"workspace_record"`
	Key             *APIKeyInput    `json:"key"`
	GroupID         string          `json:"group_id"`
	MemberType      string          `json:"member_type"`
	MemberID        string          `json:"member_id"`
	Group           *GroupInput     `json:"group"`
	Grant           *GrantInput     `json:"grant"`
	RequestID       string          `json:"request_id"`
	ClientIP        string          `json:"client_ip"`
	UserContextJSON string          `json:"user_context_json"`
	Capability      string          `json:"capability"`
	ResourceJSON    string          `json:"resource_json"`
	ParametersJSON  string          `json:"parameters_json"`
	AuthoriseChecks string          `json:"authorise_checks"`
}

// IAMResponse is the IAM service's reply (queue response:tg:iam). Which
// fields are set depends on the operation; the *JSON fields are JSON-encoded
// documents.
type IAMResponse struct {
	User                     *UserRecord       `json:"user"`
	Users                    []UserRecord      `json:"users"`
	Workspace                *WorkspaceRecord  `json:"workspace"`
	Workspaces               []WorkspaceRecord `json:"workspaces"`
	APIKeyPlaintext          string            `json:"api_key_plaintext"`
	APIKey                   *APIKeyRecord     `json:"api_key"`
	APIKeys                  []APIKeyRecord    `json:"api_keys"`
	JWT                      string            `json:"jwt"`
	JWTExpires               string            `json:"jwt_expires"`
	SigningKeyPublic         string            `json:"signing_key_public"`
	ResolvedUserID           string            `json:"resolved_user_id"`
	ResolvedDefaultWorkspace string            `json:"resolved_default_workspace"`
	ResolvedRoles            []string          `json:"resolved_roles"`
	TemporaryPassword        string            `json:"temporary_password"`
	BootstrapAdminUserID     string            `json:"bootstrap_admin_user_id"`
	BootstrapAdminAPIKey     string            `json:"bootstrap_admin_api_key"`
	BootstrapAvailable       bool              `json:"bootstrap_available"`
	DecisionAllow            bool              `json:"decision_allow"`
	DecisionTTLSeconds       int64             `json:"decision_ttl_seconds"`
	DecisionsJSON            string            `json:"decisions_json"`
	GroupJSON                string            `json:"group_json"`
	GroupsJSON               string            `json:"groups_json"`
	MembersJSON              string            `json:"members_json"`
	GrantsJSON               string            `json:"grants_json"`
	EffectivePermissionsJSON string            `json:"effective_permissions_json"`
	Error                    *Error            `json:"error"`
}
