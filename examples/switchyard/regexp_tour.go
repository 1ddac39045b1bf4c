package main

import "regexp"

// regexpPrefix matches strings starting with prefix.
func regexpPrefix(prefix string) *regexp.Regexp {
	return regexp.MustCompile("^" + regexp.QuoteMeta(prefix))
}
