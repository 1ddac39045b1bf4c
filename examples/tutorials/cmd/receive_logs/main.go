// Command receive_logs is RabbitMQ's receive_logs.go (tutorial 3, publish/subscribe) on Switchyard:
// it prints every log of the fanout exchange "logs".
// The -url flag picks the backend (default memory://); -h prints the usage.
// The program's logic is in package tutorials.
package main

import "github.com/switchyard-mq/switchyard/examples/tutorials/internal/cli"

func main() { cli.Main("receive_logs") }
