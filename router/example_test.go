package router_test

import (
	"fmt"
	"slices"

	"github.com/switchyard-mq/switchyard/router"
)

func ExampleTable_Route() {
	t := router.New[string]()
	if err := t.DeclareExchange("logs", router.Topic); err != nil {
		panic(err)
	}
	_ = t.Bind("logs", "kern.*", "kernel")
	_ = t.Bind("logs", "*.critical", "critical")
	_ = t.Bind("logs", "kern.critical", "critical") // same queue again: routed once
	_ = t.Bind("logs", "#", "archive")
	_ = t.Bind("logs", "mail.#", "mail")

	var buf []string // reuse across publishes to avoid allocating
	for _, key := range []string{"kern.critical", "mail.info", ""} {
		buf, _ = t.Route("logs", key, buf[:0])
		slices.Sort(buf) // routing order is unspecified
		fmt.Printf("%q -> %v\n", key, buf)
	}
	// Output:
	// "kern.critical" -> [archive critical kernel]
	// "mail.info" -> [archive mail]
	// "" -> [archive]
}

func ExampleMatch() {
	fmt.Println(router.Match("a.#.b", "a.x.y.b"))
	fmt.Println(router.Match("kern.*", "kern"))
	fmt.Println(router.Match("#", ""))
	// Output:
	// true
	// false
	// true
}
