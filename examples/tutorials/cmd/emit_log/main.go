// Command emit_log is RabbitMQ's emit_log.go (tutorial 3, publish/subscribe) on Switchyard:
// it publishes a log to the fanout exchange "logs".
// The -url flag picks the backend (default memory://); -h prints the usage.
// The program's logic is in package tutorials.
package main

import "github.com/switchyard-mq/switchyard/examples/tutorials/internal/cli"

func main() { cli.Main("emit_log") }
