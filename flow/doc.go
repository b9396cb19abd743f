// Package flow runs a processor the way TrustGraph runs its flow processors:
// not on fixed queues, but on the flows the configuration service assigns to
// it. A processor declares its specs once (handlers that consume one of a
// flow's queues and publish to another, and the parameters it reads); the
// Runtime follows TrustGraph 2.11.1's configuration protocol and starts,
// restarts and stops one router per flow while the process runs:
//
//   - it subscribes to the configuration push queue (notify:tg:config) first,
//     with a subscription of its own starting at the latest message;
//   - it then asks the configuration service (request:tg:config /
//     response:tg:config) for the workspaces that hold entries of type
//     processor:{id} (getkeys-all-ws) and for those entries (getvalues),
//     retrying every two seconds until it has them; workspaces whose names
//     start with "_" are skipped;
//   - each entry is one flow: its key is the flow id and its value the JSON
//     {"topics": {spec: queue}, "parameters": {name: value}};
//   - on a push whose version is newer than the last one applied and whose
//     changes name processor:{id}, it fetches the listed workspaces again and
//     starts the flows that appeared, stops those that disappeared and
//     restarts those whose definition changed (TrustGraph leaves a changed
//     flow running as it was); other flows are not disturbed.
//
// Consumers subscribe as {id}--{workspace}--{flow}--{spec}, TrustGraph's
// subscription names, so a Go processor shares a queue with a Python replica
// of the same id (a canary). Handlers read their flow and its parameters
// from the context: Param(ctx, "model").
package flow
