package schema

// defaults_gen.go holds New<Type> constructors made from the `default` tags
// of the catalogue types (see Types); TestGeneratedConstructorsAreCurrent
// fails when it is stale.
//go:generate go run ./internal/cmd/gendefaults -o defaults_gen.go
