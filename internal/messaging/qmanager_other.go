//go:build !unix

package messaging

import "os"

// processGroup is 0 where there are no process groups: the process alone
// is the run.
func processGroup() int { return 0 }

// lockFile does nothing where there is no flock: processes of one run of
// a service are not kept apart there.
func lockFile(*os.File) error { return nil }

func unlockFile(*os.File) {}
