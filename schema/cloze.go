package schema

// Message types of TrustGraph's trustgraph.schema.cloze module: the cloze
// (label prediction) model service.

// ClozeRequest is a request to the cloze model service (queue
// request:tg:cloze). Operations: predict (the default), list-models.
type ClozeRequest struct {
	Operation string `json:"operation" default:"predict"`
	Model     string `json:"model"`
	Query     string `json:"query"`
}

// ClozeModelInfo describes one cloze model. State is "ready" or "training".
type ClozeModelInfo struct {
	Name      string   `json:"name"`
	State     string   `json:"state"`
	Labels    []string `json:"labels"`
	Accuracy  *float64 `json:"accuracy"`
	TrainSize *int64   `json:"train_size"`
	TestSize  *int64   `json:"test_size"`
}

// ClozeResponse is the cloze model service's reply (queue
// response:tg:cloze): a predicted label with its confidence, or the models
// for list-models.
type ClozeResponse struct {
	Error      *Error           `json:"error"`
	Label      string           `json:"label"`
	Confidence float64          `json:"confidence"`
	Models     []ClozeModelInfo `json:"models"`
}
