// Command emit_log_direct is RabbitMQ's emit_log_direct.go (tutorial 4, routing) on Switchyard:
// it publishes a log with a severity to the direct exchange "logs_direct".
// The -url flag picks the backend (default memory://); -h prints the usage.
// The program's logic is in package tutorials.
package main

import "github.com/switchyard-mq/switchyard/examples/tutorials/internal/cli"

func main() { cli.Main("emit_log_direct") }
