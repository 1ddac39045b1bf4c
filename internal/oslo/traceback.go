package oslo

import "strconv"

// A failure's tb key holds what Python's traceback.format_exception returns
// for the exception (oslo_messaging/_drivers/common.py,
// serialize_remote_exception): a list of strings, each ending in "\n". For
// an exception that was raised it is TracebackHeader, one string per frame
// (TracebackFrame), outermost first, and the exception's line
// (ExceptionLine) last. An exception raised "from" another (its __cause__)
// is preceded by the cause's own lines and CauseSeparator; a cause that was
// never raised has no header and no frames, only its exception line:
//
//	ValueError: never raised\n
//	\nThe above exception was the direct cause of the following exception:\n\n
//	Traceback (most recent call last):\n
//	  File "/srv/app.py", line 17, in handler\n    raise X("y") from cause\n
//	app.X: y\n
//
// A Python caller shows these lines in oslo_messaging.RemoteError's message,
// and appends them to the message of an exception it rebuilds.

// TracebackHeader is the first line of the traceback of a raised Python
// exception.
const TracebackHeader = "Traceback (most recent call last):\n"

// CauseSeparator stands between the lines of an exception's cause, above,
// and those of the exception, below, as Python writes it for "raise ...
// from cause".
const CauseSeparator = "\nThe above exception was the direct cause of the following exception:\n\n"

// TracebackFrame returns one frame of a traceback as Python writes a frame
// whose source it cannot read: `  File "<file>", line <line>, in
// <function>` and a newline. (With the source, Python adds the line's text,
// indented by four spaces, in the same string.)
func TracebackFrame(file string, line int, function string) string {
	b := make([]byte, 0, 24+len(file)+len(function))
	b = append(b, `  File "`...)
	b = append(b, file...)
	b = append(b, `", line `...)
	b = strconv.AppendInt(b, int64(line), 10)
	b = append(b, ", in "...)
	b = append(b, function...)
	b = append(b, '\n')
	return string(b)
}

// ExceptionLine returns an exception's line, the last of its traceback, as
// Python's traceback.format_exception_only writes it: "<module>.<class>:
// <message>" and a newline, without the module when it is "builtins" or
// "__main__", and without ": <message>" when message is empty. A message of
// several lines stays one string.
func ExceptionLine(module, class, message string) string {
	name := class
	if module != "" && module != "builtins" && module != "__main__" {
		name = module + "." + class
	}
	if message == "" {
		return name + "\n"
	}
	return name + ": " + message + "\n"
}
