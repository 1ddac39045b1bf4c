// Command receive_logs_direct is RabbitMQ's receive_logs_direct.go (tutorial 4, routing) on Switchyard:
// it prints the logs of "logs_direct" with the severities given.
// The -url flag picks the backend (default memory://); -h prints the usage.
// The program's logic is in package tutorials.
package main

import "github.com/switchyard-mq/switchyard/examples/tutorials/internal/cli"

func main() { cli.Main("receive_logs_direct") }
