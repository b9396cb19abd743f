// Package processor turns typed handlers into a complete processor binary:
// command-line flags and environment variables (through urfave/cli), logging,
// exit codes, signals, and the operator's endpoints (/metrics, /healthz,
// /readyz). A processor declares its handlers with Handle, HandleStream or
// Consume, each with the default queues it reads and writes; the queues
// become flags (--input and --output) that accept any queue-name form.
//
//	func main() {
//		processor.Processor{
//			Name:  "shout-llm",
//			Usage: "answer completion requests in capitals",
//			Handlers: []processor.Handler{
//				processor.Handle("shout", "q1/tg/flow/text-completion-request", "q1/tg/flow/text-completion-response", shout),
//			},
//		}.Main()
//	}
//
// Exit status: 0 after a clean stop on SIGINT or SIGTERM, 2 for a usage or
// configuration mistake, 1 for any other failure; each failure is one line
// on stderr with secrets redacted.
package processor
