package main

import "github.com/urfave/cli/v2"

// extraCommands lists the commands defined in their own files.
func extraCommands() []*cli.Command {
	return []*cli.Command{brokerCommand(), benchCommand()}
}
