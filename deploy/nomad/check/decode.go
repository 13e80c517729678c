package main

// The strict decoder: an HCL body into the Nomad API structs (api.Job and what it holds),
// driven by their `hcl` struct tags the way Nomad's own jobspec parser is. Every unknown
// attribute or block, every value of the wrong type and every malformed duration is an
// error with the file and line it came from. Where each decoded block and attribute came
// from is kept in positions, so that the cluster rules can point at a line too.

import (
	"fmt"
	"math/big"
	"reflect"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

var durationType = reflect.TypeFor[time.Duration]()

// fieldKind is what a struct field's `hcl` tag makes of it.
type fieldKind int

const (
	attrField fieldKind = iota
	blockField
	labelField
)

type fieldInfo struct {
	index    int
	name     string
	kind     fieldKind
	required bool
}

// tagFields lists the fields of struct type t that carry an `hcl` tag; fields without one
// are set by the Nomad servers, never by a job file.
func tagFields(t reflect.Type) []fieldInfo {
	var fields []fieldInfo
	for i := range t.NumField() {
		tag, ok := t.Field(i).Tag.Lookup("hcl")
		if !ok || tag == "-" {
			continue
		}
		parts := strings.Split(tag, ",")
		info := fieldInfo{index: i, name: parts[0], kind: attrField, required: len(parts) == 1}
		for _, flag := range parts[1:] {
			switch flag {
			case "block":
				info.kind = blockField
			case "label":
				info.kind = labelField
			}
		}
		fields = append(fields, info)
	}
	return fields
}

// blockElem is the struct or map type one block of a field of type t decodes into.
func blockElem(t reflect.Type) reflect.Type {
	if t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() == reflect.Map && t.Elem().Kind() == reflect.Pointer && t.Elem().Elem().Kind() == reflect.Struct {
		return t.Elem().Elem()
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// labelNames is how many labels (and their names) a block of field type t takes.
func labelNames(t reflect.Type) []string {
	if t.Kind() == reflect.Map && t.Elem().Kind() == reflect.Pointer && t.Elem().Elem().Kind() == reflect.Struct {
		return []string{"name"}
	}
	elem := blockElem(t)
	if elem.Kind() != reflect.Struct {
		return nil
	}
	var names []string
	for _, f := range tagFields(elem) {
		if f.kind == labelField {
			names = append(names, cmpOr(f.name, "label"))
		}
	}
	return names
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// decoder decodes bodies with one evaluation context (variables, locals, functions).
type decoder struct {
	eval *evaluator
	pos  *positions
}

// decodeStruct decodes body into the struct rv (addressable), strictly.
func (d *decoder) decodeStruct(body hcl.Body, rv reflect.Value) hcl.Diagnostics {
	fields := tagFields(rv.Type())
	schema := &hcl.BodySchema{}
	for _, f := range fields {
		switch f.kind {
		case attrField:
			schema.Attributes = append(schema.Attributes, hcl.AttributeSchema{Name: f.name, Required: f.required})
		case blockField:
			schema.Blocks = append(schema.Blocks, hcl.BlockHeaderSchema{Type: f.name, LabelNames: labelNames(rv.Type().Field(f.index).Type)})
		}
	}
	content, diags := body.Content(schema)
	if diags.HasErrors() {
		return diags
	}
	for _, f := range fields {
		fv := rv.Field(f.index)
		switch f.kind {
		case attrField:
			if attr, ok := content.Attributes[f.name]; ok {
				d.pos.attr(rv, f.name, attr.Range)
				diags = append(diags, d.assign(attr.Expr, fv, f.name)...)
			}
		case blockField:
			var blocks []*hcl.Block
			for _, block := range content.Blocks {
				if block.Type == f.name {
					blocks = append(blocks, block)
				}
			}
			if len(blocks) > 0 {
				d.pos.attr(rv, f.name, blocks[0].DefRange)
				diags = append(diags, d.decodeBlocks(blocks, fv)...)
			}
		}
	}
	return diags
}

// decodeBlocks decodes the blocks of one field, by the field's type.
func (d *decoder) decodeBlocks(blocks []*hcl.Block, fv reflect.Value) hcl.Diagnostics {
	t := fv.Type()
	switch {
	case t.Kind() == reflect.Slice:
		slice := reflect.MakeSlice(t, len(blocks), len(blocks))
		var diags hcl.Diagnostics
		for i, block := range blocks {
			elem := slice.Index(i)
			if t.Elem().Kind() == reflect.Pointer {
				elem.Set(reflect.New(t.Elem().Elem()))
				elem = elem.Elem()
			}
			diags = append(diags, d.decodeLabelled(block, elem)...)
		}
		fv.Set(slice)
		return diags
	case t.Kind() == reflect.Map && labelNames(t) != nil:
		m := reflect.MakeMap(t)
		var diags hcl.Diagnostics
		for _, block := range blocks {
			key := reflect.ValueOf(block.Labels[0])
			if m.MapIndex(key).IsValid() {
				diags = append(diags, duplicate(block))
				continue
			}
			elem := reflect.New(t.Elem().Elem())
			diags = append(diags, d.decodeStruct(block.Body, elem.Elem())...)
			d.pos.block(elem.Elem(), block.DefRange)
			m.SetMapIndex(key, elem)
		}
		fv.Set(m)
		return diags
	}
	if len(blocks) > 1 {
		return hcl.Diagnostics{duplicate(blocks[1])}
	}
	block := blocks[0]
	switch t.Kind() {
	case reflect.Pointer:
		elem := reflect.New(t.Elem())
		diags := d.decodeLabelled(block, elem.Elem())
		fv.Set(elem)
		return diags
	case reflect.Map:
		return d.decodeMapBlock(block, fv)
	}
	return hcl.Diagnostics{errorAt(block.DefRange, "Unsupported block type", fmt.Sprintf("the checker cannot decode a %s block", t))}
}

// decodeLabelled decodes one block into struct rv: its labels, then its body.
func (d *decoder) decodeLabelled(block *hcl.Block, rv reflect.Value) hcl.Diagnostics {
	labels := block.Labels
	for _, f := range tagFields(rv.Type()) {
		if f.kind == labelField && len(labels) > 0 {
			setLabel(rv.Field(f.index), labels[0])
			labels = labels[1:]
		}
	}
	d.pos.block(rv, block.DefRange)
	return d.decodeStruct(block.Body, rv)
}

func setLabel(fv reflect.Value, label string) {
	if fv.Kind() == reflect.Pointer {
		fv.Set(reflect.ValueOf(&label))
		return
	}
	fv.SetString(label)
}

// decodeMapBlock decodes a block of attributes (meta, env, header) or, for map[string]any
// (a driver's config, an autoscaler policy), a free-form body.
func (d *decoder) decodeMapBlock(block *hcl.Block, fv reflect.Value) hcl.Diagnostics {
	if fv.Type().Elem().Kind() == reflect.Interface {
		value, diags := d.freeForm(block.Body)
		if !diags.HasErrors() {
			fv.Set(reflect.ValueOf(value))
		}
		return diags
	}
	attrs, diags := block.Body.JustAttributes()
	if diags.HasErrors() {
		return diags
	}
	m := reflect.MakeMap(fv.Type())
	for name, attr := range attrs {
		elem := reflect.New(fv.Type().Elem()).Elem()
		diags = append(diags, d.assign(attr.Expr, elem, name)...)
		m.SetMapIndex(reflect.ValueOf(name), elem)
	}
	fv.Set(m)
	return diags
}

// freeForm decodes a body whose schema is not Nomad's (a driver's config, a policy):
// attributes become Go values, blocks become lists of maps (nested by their labels).
func (d *decoder) freeForm(body hcl.Body) (map[string]any, hcl.Diagnostics) {
	syntax, ok := body.(*hclsyntax.Body)
	if !ok {
		return nil, hcl.Diagnostics{errorAt(body.MissingItemRange(), "Unsupported syntax", "only native HCL syntax is supported")}
	}
	out := map[string]any{}
	var diags hcl.Diagnostics
	for name, attr := range syntax.Attributes {
		value, more := d.eval.value(attr.Expr)
		diags = append(diags, more...)
		if !more.HasErrors() {
			out[name] = ctyToGo(value)
		}
	}
	for _, block := range syntax.Blocks {
		inner, more := d.freeForm(block.Body)
		diags = append(diags, more...)
		var item any = inner
		for i := len(block.Labels) - 1; i >= 0; i-- {
			item = map[string]any{block.Labels[i]: item}
		}
		list, _ := out[block.Type].([]any)
		out[block.Type] = append(list, item)
	}
	return out, diags
}

// assign evaluates expr and stores it into fv, converted to fv's type.
func (d *decoder) assign(expr hcl.Expression, fv reflect.Value, name string) hcl.Diagnostics {
	value, diags := d.eval.value(expr)
	if diags.HasErrors() {
		return diags
	}
	if err := setValue(fv, value); err != nil {
		return hcl.Diagnostics{errorAt(expr.Range(), fmt.Sprintf("Invalid value for %q", name), err.Error())}
	}
	return nil
}

// setValue converts value to fv's Go type the way HCL converts (a number given as a string
// is a number), and refuses what does not convert.
func setValue(fv reflect.Value, value cty.Value) error {
	if value.IsNull() {
		return fmt.Errorf("must not be null")
	}
	if !value.IsWhollyKnown() {
		return fmt.Errorf("value is not known")
	}
	t := fv.Type()
	if t == durationType {
		return setDuration(fv, value)
	}
	switch t.Kind() {
	case reflect.Pointer:
		elem := reflect.New(t.Elem())
		if err := setValue(elem.Elem(), value); err != nil {
			return err
		}
		fv.Set(elem)
	case reflect.String:
		s, err := convert.Convert(value, cty.String)
		if err != nil {
			return fmt.Errorf("a string is required: %s", err)
		}
		fv.SetString(s.AsString())
	case reflect.Bool:
		b, err := convert.Convert(value, cty.Bool)
		if err != nil {
			return fmt.Errorf("a bool is required: %s", err)
		}
		fv.SetBool(b.True())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return setInteger(fv, value)
	case reflect.Float32, reflect.Float64:
		n, err := convert.Convert(value, cty.Number)
		if err != nil {
			return fmt.Errorf("a number is required: %s", err)
		}
		f, _ := n.AsBigFloat().Float64()
		fv.SetFloat(f)
	case reflect.Slice:
		return setSlice(fv, value)
	case reflect.Map:
		return setMap(fv, value)
	case reflect.Interface:
		fv.Set(reflect.ValueOf(ctyToGo(value)))
	default:
		return fmt.Errorf("the checker cannot decode into %s", t)
	}
	return nil
}

func setDuration(fv reflect.Value, value cty.Value) error {
	if value.Type() != cty.String {
		return fmt.Errorf("a duration is required, as a string like \"30s\" or \"1m30s\", not a %s", value.Type().FriendlyName())
	}
	duration, err := time.ParseDuration(value.AsString())
	if err != nil {
		return fmt.Errorf("a duration is required, like \"30s\" or \"1m30s\": %s", err)
	}
	if duration < 0 {
		return fmt.Errorf("a duration must not be negative: %q", value.AsString())
	}
	fv.SetInt(int64(duration))
	return nil
}

func setInteger(fv reflect.Value, value cty.Value) error {
	n, err := convert.Convert(value, cty.Number)
	if err != nil {
		return fmt.Errorf("a whole number is required: %s", err)
	}
	big := n.AsBigFloat()
	if !big.IsInt() {
		return fmt.Errorf("a whole number is required, not %s", big.String())
	}
	i, accuracy := big.Int64()
	overflows := accuracy != bigExact
	if fv.CanInt() {
		overflows = overflows || fv.OverflowInt(i)
	} else {
		overflows = overflows || i < 0 || fv.OverflowUint(uint64(i))
	}
	if overflows {
		return fmt.Errorf("%s is out of range for this setting", big.String())
	}
	if fv.CanInt() {
		fv.SetInt(i)
	} else {
		fv.SetUint(uint64(i))
	}
	return nil
}

const bigExact = big.Exact

func setSlice(fv reflect.Value, value cty.Value) error {
	ty := value.Type()
	if !ty.IsListType() && !ty.IsTupleType() && !ty.IsSetType() {
		return fmt.Errorf("a list is required, not a %s", ty.FriendlyName())
	}
	slice := reflect.MakeSlice(fv.Type(), 0, value.LengthInt())
	for it := value.ElementIterator(); it.Next(); {
		_, elem := it.Element()
		item := reflect.New(fv.Type().Elem()).Elem()
		if err := setValue(item, elem); err != nil {
			return fmt.Errorf("list element %d: %w", slice.Len(), err)
		}
		slice = reflect.Append(slice, item)
	}
	fv.Set(slice)
	return nil
}

func setMap(fv reflect.Value, value cty.Value) error {
	ty := value.Type()
	if !ty.IsObjectType() && !ty.IsMapType() {
		return fmt.Errorf("a map is required, not a %s", ty.FriendlyName())
	}
	m := reflect.MakeMap(fv.Type())
	for it := value.ElementIterator(); it.Next(); {
		key, elem := it.Element()
		item := reflect.New(fv.Type().Elem()).Elem()
		if err := setValue(item, elem); err != nil {
			return fmt.Errorf("key %q: %w", key.AsString(), err)
		}
		m.SetMapIndex(reflect.ValueOf(key.AsString()), item)
	}
	fv.Set(m)
	return nil
}

// ctyToGo turns a known value into plain Go values (string, float64 or int64, bool, []any,
// map[string]any), for free-form bodies.
func ctyToGo(value cty.Value) any {
	if value.IsNull() || !value.IsKnown() {
		return nil
	}
	ty := value.Type()
	switch {
	case ty == cty.String:
		return value.AsString()
	case ty == cty.Bool:
		return value.True()
	case ty == cty.Number:
		f := value.AsBigFloat()
		if i, accuracy := f.Int64(); accuracy == big.Exact {
			return i
		}
		x, _ := f.Float64()
		return x
	case ty.IsListType() || ty.IsTupleType() || ty.IsSetType():
		var out []any
		for it := value.ElementIterator(); it.Next(); {
			_, elem := it.Element()
			out = append(out, ctyToGo(elem))
		}
		return out
	case ty.IsMapType() || ty.IsObjectType():
		out := map[string]any{}
		for it := value.ElementIterator(); it.Next(); {
			key, elem := it.Element()
			out[key.AsString()] = ctyToGo(elem)
		}
		return out
	}
	return nil
}

func duplicate(block *hcl.Block) *hcl.Diagnostic {
	return errorAt(block.DefRange, fmt.Sprintf("Duplicate %s block", block.Type), fmt.Sprintf("only one %q block is allowed here", block.Type))
}

func errorAt(r hcl.Range, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: r.Ptr()}
}
