// Package e2e holds the end-to-end tests: the example processors run as
// separate processes on a real backend, requests go in with
// `switchyard publish` and replies come back through `switchyard tail`.
package e2e
