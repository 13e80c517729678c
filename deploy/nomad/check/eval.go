package main

// Expression evaluation: variables, locals and functions are evaluated; Nomad's runtime
// interpolations (`${NOMAD_ADDR_http}`, `${attr.unique.hostname}`, `${meta.x}`, …) are
// kept literally, as Nomad's own parser keeps them for the client to fill in.

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// runtimeRoots are the interpolation namespaces a Nomad client fills in when it starts a
// task; a root name starting with NOMAD_ is one too.
var runtimeRoots = map[string]bool{"attr": true, "node": true, "meta": true, "env": true, "device": true}

func isRuntimeRoot(name string) bool {
	return strings.HasPrefix(name, "NOMAD_") || runtimeRoots[name]
}

// functions is the subset of HCL's standard library a job file here may call.
var functions = map[string]function.Function{
	"upper":     stdlib.UpperFunc,
	"lower":     stdlib.LowerFunc,
	"join":      stdlib.JoinFunc,
	"split":     stdlib.SplitFunc,
	"format":    stdlib.FormatFunc,
	"concat":    stdlib.ConcatFunc,
	"merge":     stdlib.MergeFunc,
	"min":       stdlib.MinFunc,
	"max":       stdlib.MaxFunc,
	"coalesce":  stdlib.CoalesceFunc,
	"length":    stdlib.LengthFunc,
	"replace":   stdlib.ReplaceFunc,
	"trimspace": stdlib.TrimSpaceFunc,
}

// evaluator evaluates expressions of one file against its variables and locals.
type evaluator struct {
	ctx *hcl.EvalContext
	// src is the file's text, to copy runtime interpolations from verbatim.
	src map[string][]byte
}

func newEvaluator(src map[string][]byte) *evaluator {
	return &evaluator{
		ctx: &hcl.EvalContext{Variables: map[string]cty.Value{}, Functions: functions},
		src: src,
	}
}

// value evaluates expr, runtime interpolations kept as `${…}` text.
func (e *evaluator) value(expr hcl.Expression) (cty.Value, hcl.Diagnostics) {
	ctx := e.ctx
	placeholders, diags := e.placeholders(expr.Variables())
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	if len(placeholders) > 0 {
		ctx = e.ctx.NewChild()
		ctx.Variables = placeholders
	}
	return expr.Value(ctx)
}

// placeholders builds, for the runtime roots traversed, values whose leaves are the
// traversals' own text wrapped in `${…}`: `attr.unique.hostname` evaluates to
// "${attr.unique.hostname}".
func (e *evaluator) placeholders(traversals []hcl.Traversal) (map[string]cty.Value, hcl.Diagnostics) {
	trees := map[string]any{}
	for _, traversal := range traversals {
		root := traversal.RootName()
		if !isRuntimeRoot(root) {
			continue
		}
		literal := "${" + e.text(traversal.SourceRange()) + "}"
		steps := []string{root}
		for _, step := range traversal[1:] {
			switch s := step.(type) {
			case hcl.TraverseAttr:
				steps = append(steps, s.Name)
			case hcl.TraverseIndex:
				if s.Key.Type() != cty.String {
					return nil, hcl.Diagnostics{errorAt(traversal.SourceRange(), "Unsupported runtime interpolation", "only names and string keys are kept literally")}
				}
				steps = append(steps, s.Key.AsString())
			default:
				return nil, hcl.Diagnostics{errorAt(traversal.SourceRange(), "Unsupported runtime interpolation", "only names and string keys are kept literally")}
			}
		}
		if err := plant(trees, steps, literal); err != nil {
			return nil, hcl.Diagnostics{errorAt(traversal.SourceRange(), "Unsupported runtime interpolation", err.Error())}
		}
	}
	out := map[string]cty.Value{}
	for root, tree := range trees {
		out[root] = treeValue(tree)
	}
	return out, nil
}

func (e *evaluator) text(r hcl.Range) string {
	src := e.src[r.Filename]
	if r.End.Byte > len(src) || r.Start.Byte > r.End.Byte {
		return "?"
	}
	return string(src[r.Start.Byte:r.End.Byte])
}

// plant puts literal at path steps in tree (nested maps).
func plant(tree map[string]any, steps []string, literal string) error {
	node := tree
	for i, step := range steps {
		if i == len(steps)-1 {
			if existing, ok := node[step]; ok {
				if _, isMap := existing.(map[string]any); isMap {
					return fmt.Errorf("%s is used both as a value and as a namespace", strings.Join(steps, "."))
				}
			}
			node[step] = literal
			return nil
		}
		next, ok := node[step].(map[string]any)
		if !ok {
			if _, taken := node[step]; taken {
				return fmt.Errorf("%s is used both as a value and as a namespace", strings.Join(steps[:i+1], "."))
			}
			next = map[string]any{}
			node[step] = next
		}
		node = next
	}
	return nil
}

func treeValue(tree any) cty.Value {
	switch t := tree.(type) {
	case string:
		return cty.StringVal(t)
	case map[string]any:
		attrs := map[string]cty.Value{}
		for k, v := range t {
			attrs[k] = treeValue(v)
		}
		return cty.ObjectVal(attrs)
	}
	return cty.NilVal
}
