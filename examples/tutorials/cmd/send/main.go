// Command send is RabbitMQ's send.go (tutorial 1, "Hello World!") on Switchyard:
// it sends a message to the queue "hello".
// The -url flag picks the backend (default memory://); -h prints the usage.
// The program's logic is in package tutorials.
package main

import "github.com/switchyard-mq/switchyard/examples/tutorials/internal/cli"

func main() { cli.Main("send") }
