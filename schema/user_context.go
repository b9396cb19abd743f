package schema

// Message types of TrustGraph's trustgraph.schema.user_context module: the
// identity and entitlements of the user a query runs for.

// Assignment is a resource assignment of a user, valid between ValidFrom
// and ValidTo.
type Assignment struct {
	Resource   string            `json:"resource"`
	Scope      string            `json:"scope"`
	Status     string            `json:"status"`
	ValidFrom  string            `json:"valid_from"`
	ValidTo    string            `json:"valid_to"`
	Qualifiers map[string]string `json:"qualifiers"`
}

// Entitlement is a level of access to a resource scope, valid between
// ValidFrom and ValidTo.
type Entitlement struct {
	ResourceScope string `json:"resource_scope"`
	AccessLevel   string `json:"access_level"`
	ValidFrom     string `json:"valid_from"`
	ValidTo       string `json:"valid_to"`
}

// OverrideAuthority is the authority to override a policy area under a
// condition.
type OverrideAuthority struct {
	PolicyArea string `json:"policy_area"`
	Condition  string `json:"condition"`
}

// Delegation says who delegated authority to the user, and for what scope.
type Delegation struct {
	DelegatorID string `json:"delegator_id"`
	Scope       string `json:"scope"`
}

// UserContext is the identity, roles and entitlements of the user a query
// runs for, and the purpose of the query.
type UserContext struct {
	UserID              string              `json:"user_id"`
	Roles               []string            `json:"roles"`
	Assignments         []Assignment        `json:"assignments"`
	Entitlements        []Entitlement       `json:"entitlements"`
	OrganisationalUnits []string            `json:"organisational_units"`
	OverrideAuthorities []OverrideAuthority `json:"override_authorities"`
	Delegation          *Delegation         `json:"delegation"`
	Purpose             string              `json:"purpose"`
}
