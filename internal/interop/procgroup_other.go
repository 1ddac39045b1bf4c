//go:build !unix

package interop

// LeadProcessGroup does nothing where there are no process groups.
func LeadProcessGroup() error { return nil }
