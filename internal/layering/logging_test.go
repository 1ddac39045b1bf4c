package layering_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// contextFree are the slog calls that take no context; each has a
// *Context form (slog.InfoContext, logger.WarnContext(ctx, ...)).
var contextFree = map[string]bool{"Debug": true, "Info": true, "Warn": true, "Error": true}

// TestLibraryLogsWithContext holds the house rule that code logs with a
// context, so that a trace-aware slog.Handler can join each record to the
// span of the work it is about: a call of slog.Debug/Info/Warn/Error, or
// of a method of that name given a message (a string literal first), in
// any non-test file of the module fails, naming the place.
func TestLibraryLogsWithContext(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	files := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files++
		for _, call := range contextFreeLogCalls(f) {
			pos := fset.Position(call.Pos())
			rel, _ := filepath.Rel(root, pos.Filename)
			t.Errorf("%s:%d: %s without a context: use its Context form with the context of the work logged about",
				rel, pos.Line, callName(call))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("only %d Go files found under %s: the walk went wrong", files, root)
	}
}

// contextFreeLogCalls returns f's log calls that take no context.
func contextFreeLogCalls(f *ast.File) []*ast.CallExpr {
	slogName := ""
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == "log/slog" {
			slogName = "slog"
			if imp.Name != nil {
				slogName = imp.Name.Name
			}
		}
	}
	var found []*ast.CallExpr
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || !contextFree[sel.Sel.Name] {
			return true
		}
		if id, ok := sel.X.(*ast.Ident); ok && slogName != "" && id.Name == slogName {
			found = append(found, call)
			return true
		}
		if len(call.Args) > 0 {
			if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				found = append(found, call)
			}
		}
		return true
	})
	return found
}

func callName(call *ast.CallExpr) string {
	sel := call.Fun.(*ast.SelectorExpr)
	if id, ok := sel.X.(*ast.Ident); ok {
		return id.Name + "." + sel.Sel.Name
	}
	return "." + sel.Sel.Name
}

// TestContextFreeLogCallsFound keeps the check above honest: it finds the
// calls it is meant to, and leaves the Context forms alone.
func TestContextFreeLogCallsFound(t *testing.T) {
	tests := []struct {
		name, src string
		want      int
	}{
		{"package function", `package p; import "log/slog"; func f() { slog.Info("x") }`, 1},
		{"renamed import", `package p; import lg "log/slog"; func f() { lg.Warn("x", "k", 1) }`, 1},
		{"logger method", `package p; func f(l interface{ Error(string, ...any) }) { l.Error("failed", "err", 1) }`, 1},
		{"field logger", `package p; type s struct{ logger interface{ Debug(string, ...any) } }; func (x s) f() { x.logger.Debug("m") }`, 1},
		{"context forms", `package p; import ("context"; "log/slog"); func f(ctx context.Context, l *slog.Logger) { slog.InfoContext(ctx, "x"); l.WarnContext(ctx, "y"); l.Log(ctx, slog.LevelInfo, "z") }`, 0},
		{"not a log call", `package p; func f(e interface{ Error() string }) string { return e.Error() }`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parser.ParseFile(token.NewFileSet(), "p.go", tt.src, 0)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(contextFreeLogCalls(f)); got != tt.want {
				t.Errorf("found %d context-free log calls, want %d", got, tt.want)
			}
		})
	}
}
