// Command receive_logs_topic is RabbitMQ's receive_logs_topic.go (tutorial 5, topics) on Switchyard:
// it prints the logs of "logs_topic" that match the binding keys given.
// The -url flag picks the backend (default memory://); -h prints the usage.
// The program's logic is in package tutorials.
package main

import "github.com/switchyard-mq/switchyard/examples/tutorials/internal/cli"

func main() { cli.Main("receive_logs_topic") }
