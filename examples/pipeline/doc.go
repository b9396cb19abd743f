// Package pipeline holds the handlers of the example processors, so that each
// example binary (echo-llm, prompt-template) and the in-process demo share
// one implementation.
//
// The example chain is
//
//	prompt-request --[prompt-template]--> text-completion-request --[echo-llm]--> text-completion-response
package pipeline
