package openai

import (
	"context"
	"net/http"
)

// Model is one entry of the model list. Only ID is always set; the rest is
// what the server chose to say (OpenAI: created, owned_by; vLLM:
// max_model_len; OpenRouter-like servers: name, description,
// context_length).
type Model struct {
	// ID is the model's name in requests.
	ID string
	// Name is a display name.
	Name *string
	// OwnedBy is the organisation that owns the model.
	OwnedBy *string
	// Created is when the model was made, in Unix seconds.
	Created *int64
	// Description describes the model.
	Description *string
	// ContextLength is the model's context window in tokens.
	ContextLength *int64
}

type wireModel struct {
	ID            string  `json:"id"`
	Name          *string `json:"name"`
	OwnedBy       *string `json:"owned_by"`
	Created       *int64  `json:"created"`
	Description   *string `json:"description"`
	ContextLength *int64  `json:"context_length"`
	MaxModelLen   *int64  `json:"max_model_len"`
}

type wireModelList struct {
	Data []wireModel `json:"data"`
}

// ListModels returns the models the server offers (GET /models), in the
// server's order. Entries without an id are skipped.
func (c *Client) ListModels(ctx context.Context) ([]Model, error) {
	var list wireModelList
	if err := c.call(ctx, http.MethodGet, "/models", nil, &list); err != nil {
		return nil, err
	}
	out := make([]Model, 0, len(list.Data))
	for _, m := range list.Data {
		if m.ID == "" {
			continue
		}
		ctxLen := m.ContextLength
		if ctxLen == nil {
			ctxLen = m.MaxModelLen
		}
		out = append(out, Model{ID: m.ID, Name: m.Name, OwnedBy: m.OwnedBy, Created: m.Created, Description: m.Description, ContextLength: ctxLen})
	}
	return out, nil
}
