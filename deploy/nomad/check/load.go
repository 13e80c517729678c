package main

// Loading a job file: its `variable` blocks (set from var files, `-var` flags or their
// defaults), its `locals`, then its one `job` block decoded strictly into api.Job.

import (
	"fmt"
	"reflect"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/nomad/api"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// inputs are the values given to a job file's variables.
type inputs struct {
	varFiles []string
	// vars are `-var name=value` flags, applied after the var files.
	vars map[string]string
}

// loaded is a decoded job with where its parts came from.
type loaded struct {
	job  *api.Job
	pos  *positions
	file string
	// jobRange is the `job` block's header, for rules about what is missing.
	jobRange hcl.Range
	// locals and variables as evaluated, for the rules and the render mode.
	eval *evaluator
	// undeclared are the var files' names this job does not declare, where they are set.
	undeclared map[string]hcl.Range
}

type variableDef struct {
	name     string
	ty       cty.Type
	value    cty.Value
	defRange hcl.Range
}

var topSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "locals"},
		{Type: "job", LabelNames: []string{"name"}},
	},
}

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "type"}, {Name: "default"}, {Name: "description"}, {Name: "sensitive"}},
}

// loadJob parses and decodes one job file strictly.
func loadJob(path string, in inputs) (*loaded, hcl.Diagnostics) {
	parser := hclparse.NewParser()
	file, diags := parser.ParseHCLFile(path)
	if diags.HasErrors() {
		return nil, diags
	}
	content, diags := file.Body.Content(topSchema)
	if diags.HasErrors() {
		return nil, diags
	}
	src := map[string][]byte{}
	for name, f := range parser.Files() {
		src[name] = f.Bytes
	}
	eval := newEvaluator(src)
	defs, diags := declareVariables(content.Blocks)
	if diags.HasErrors() {
		return nil, diags
	}
	undeclared := map[string]hcl.Range{}
	if diags = applyInputs(parser, defs, in, undeclared); diags.HasErrors() {
		return nil, diags
	}
	if diags = bindVariables(eval, defs); diags.HasErrors() {
		return nil, diags
	}
	if diags = bindLocals(eval, content.Blocks); diags.HasErrors() {
		return nil, diags
	}
	l, diags := decodeJob(path, eval, content.Blocks)
	if l != nil {
		l.undeclared = undeclared
	}
	return l, diags
}

func declareVariables(blocks hcl.Blocks) (map[string]*variableDef, hcl.Diagnostics) {
	defs := map[string]*variableDef{}
	var diags hcl.Diagnostics
	for _, block := range blocks.OfType("variable") {
		name := block.Labels[0]
		if _, dup := defs[name]; dup {
			diags = append(diags, errorAt(block.DefRange, "Duplicate variable", fmt.Sprintf("variable %q is declared twice", name)))
			continue
		}
		body, more := block.Body.Content(variableSchema)
		diags = append(diags, more...)
		def := &variableDef{name: name, ty: cty.DynamicPseudoType, value: cty.NilVal, defRange: block.DefRange}
		if attr, ok := body.Attributes["type"]; ok {
			ty, more := typeexpr.TypeConstraint(attr.Expr)
			diags = append(diags, more...)
			def.ty = ty
		}
		if attr, ok := body.Attributes["default"]; ok {
			value, more := attr.Expr.Value(nil)
			diags = append(diags, more...)
			def.value, more = convertTo(value, def.ty, attr.Expr.Range(), name)
			diags = append(diags, more...)
		}
		defs[name] = def
	}
	return defs, diags
}

// applyInputs sets variables from the var files, then from `-var` flags.
// A var file's value for a variable the job does not declare is left for the caller
// (undeclared): one var file serves several jobs, each declaring some of its names.
func applyInputs(parser *hclparse.Parser, defs map[string]*variableDef, in inputs, undeclared map[string]hcl.Range) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, path := range in.varFiles {
		file, more := parser.ParseHCLFile(path)
		if more.HasErrors() {
			return more
		}
		attrs, more := file.Body.JustAttributes()
		if more.HasErrors() {
			return more
		}
		for name, attr := range attrs {
			def, ok := defs[name]
			if !ok {
				undeclared[name] = attr.NameRange
				continue
			}
			value, more := attr.Expr.Value(nil)
			diags = append(diags, more...)
			def.value, more = convertTo(value, def.ty, attr.Expr.Range(), name)
			diags = append(diags, more...)
		}
	}
	names := make([]string, 0, len(in.vars))
	for name := range in.vars {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		def, ok := defs[name]
		if !ok {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Undefined variable", Detail: fmt.Sprintf("-var %s: not declared by the job file", name)})
			continue
		}
		value, more := flagValue(in.vars[name], def.ty)
		diags = append(diags, more...)
		def.value, more = convertTo(value, def.ty, def.defRange, name)
		diags = append(diags, more...)
	}
	return diags
}

// flagValue reads a `-var` value: raw text for a string, an HCL expression otherwise.
func flagValue(raw string, ty cty.Type) (cty.Value, hcl.Diagnostics) {
	if ty == cty.String || ty == cty.DynamicPseudoType {
		return cty.StringVal(raw), nil
	}
	expr, diags := hclsyntax.ParseExpression([]byte(raw), "-var", hcl.InitialPos)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	return expr.Value(nil)
}

func convertTo(value cty.Value, ty cty.Type, r hcl.Range, name string) (cty.Value, hcl.Diagnostics) {
	converted, err := convert.Convert(value, ty)
	if err != nil {
		return cty.NilVal, hcl.Diagnostics{errorAt(r, "Invalid value for variable", fmt.Sprintf("variable %q: %s", name, err))}
	}
	return converted, nil
}

func bindVariables(eval *evaluator, defs map[string]*variableDef) hcl.Diagnostics {
	var diags hcl.Diagnostics
	values := map[string]cty.Value{}
	for name, def := range defs {
		if def.value == cty.NilVal {
			diags = append(diags, errorAt(def.defRange, "Unset variable", fmt.Sprintf("variable %q has no default and no value from a var file or -var", name)))
			continue
		}
		values[name] = def.value
	}
	eval.ctx.Variables["var"] = cty.ObjectVal(values)
	return diags
}

// bindLocals evaluates the locals in dependency order (a local may use others).
func bindLocals(eval *evaluator, blocks hcl.Blocks) hcl.Diagnostics {
	pending := map[string]*hcl.Attribute{}
	for _, block := range blocks.OfType("locals") {
		attrs, diags := block.Body.JustAttributes()
		if diags.HasErrors() {
			return diags
		}
		for name, attr := range attrs {
			if _, dup := pending[name]; dup {
				return hcl.Diagnostics{errorAt(attr.NameRange, "Duplicate local", fmt.Sprintf("local %q is defined twice", name))}
			}
			pending[name] = attr
		}
	}
	values := map[string]cty.Value{}
	for len(pending) > 0 {
		progressed := false
		for name, attr := range pending {
			if !localsReady(attr.Expr, values) {
				continue
			}
			eval.ctx.Variables["local"] = cty.ObjectVal(values)
			value, diags := eval.value(attr.Expr)
			if diags.HasErrors() {
				return diags
			}
			values[name] = value
			delete(pending, name)
			progressed = true
		}
		if !progressed {
			var diags hcl.Diagnostics
			for name, attr := range pending {
				diags = append(diags, errorAt(attr.Expr.Range(), "Unresolvable local", fmt.Sprintf("local %q depends on an unknown local or on itself", name)))
			}
			return diags
		}
	}
	eval.ctx.Variables["local"] = cty.ObjectVal(values)
	return nil
}

func localsReady(expr hcl.Expression, done map[string]cty.Value) bool {
	for _, traversal := range expr.Variables() {
		if traversal.RootName() != "local" || len(traversal) < 2 {
			continue
		}
		if attr, ok := traversal[1].(hcl.TraverseAttr); ok {
			if _, ready := done[attr.Name]; !ready {
				return false
			}
		}
	}
	return true
}

// decodeJob decodes the file's one job block: its label is the job's id (and name).
func decodeJob(path string, eval *evaluator, blocks hcl.Blocks) (*loaded, hcl.Diagnostics) {
	jobs := blocks.OfType("job")
	if len(jobs) != 1 {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "One job block required", Detail: fmt.Sprintf("%s has %d job blocks", path, len(jobs)), Subject: &hcl.Range{Filename: path, Start: hcl.InitialPos, End: hcl.InitialPos}}}
	}
	block := jobs[0]
	job := &api.Job{}
	pos := newPositions()
	dec := &decoder{eval: eval, pos: pos}
	rv := reflect.ValueOf(job).Elem()
	pos.block(rv, block.DefRange)
	diags := dec.decodeStruct(block.Body, rv)
	if diags.HasErrors() {
		return nil, diags
	}
	id := block.Labels[0]
	if job.ID == nil {
		job.ID = &id
	}
	if job.Name == nil {
		job.Name = &id
	}
	splitStaticPorts(job)
	return &loaded{job: job, pos: pos, file: path, jobRange: block.DefRange, eval: eval}, nil
}

// splitStaticPorts moves `port` blocks with a static value to ReservedPorts, as Nomad's
// parser does: every `port` block decodes as a dynamic port first.
func splitStaticPorts(job *api.Job) {
	for _, group := range job.TaskGroups {
		for _, network := range group.Networks {
			var dynamic, reserved []api.Port
			for _, port := range network.DynamicPorts {
				if port.Value > 0 {
					reserved = append(reserved, port)
				} else {
					dynamic = append(dynamic, port)
				}
			}
			network.DynamicPorts = dynamic
			network.ReservedPorts = append(network.ReservedPorts, reserved...)
		}
	}
}
