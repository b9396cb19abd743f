package openai

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

type wireEmbeddingsRequest struct {
	Model string   `json:"model"`
	Input []string `json:"input"`
}

type wireEmbedding struct {
	Index     *int      `json:"index"`
	Embedding []float64 `json:"embedding"`
}

type wireEmbeddingsResponse struct {
	Data []wireEmbedding `json:"data"`
}

// Embeddings returns one vector per text, in the order of texts (POST
// /embeddings). No texts give no vectors, without a call. The answer's
// entries are placed by their index; an answer that does not give exactly
// one vector per text is a *ResponseError.
func (c *Client) Embeddings(ctx context.Context, model string, texts []string) ([][]float64, error) {
	if model == "" {
		return nil, errors.New("openai: the embeddings request names no model")
	}
	if len(texts) == 0 {
		return [][]float64{}, nil
	}
	var resp wireEmbeddingsResponse
	if err := c.call(ctx, http.MethodPost, "/embeddings", wireEmbeddingsRequest{Model: model, Input: texts}, &resp); err != nil {
		return nil, err
	}
	const op = "POST /embeddings"
	if len(resp.Data) != len(texts) {
		return nil, &ResponseError{Op: op, Problem: fmt.Sprintf("%d vectors for %d texts", len(resp.Data), len(texts))}
	}
	out := make([][]float64, len(texts))
	for i, d := range resp.Data {
		at := i
		if d.Index != nil {
			at = *d.Index
		}
		if at < 0 || at >= len(out) || out[at] != nil {
			return nil, &ResponseError{Op: op, Problem: fmt.Sprintf("vector %d has index %d, out of range or repeated", i, at)}
		}
		if d.Embedding == nil {
			return nil, &ResponseError{Op: op, Problem: fmt.Sprintf("vector %d is empty", at)}
		}
		out[at] = d.Embedding
	}
	return out, nil
}
