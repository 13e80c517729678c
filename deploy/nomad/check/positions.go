package main

// Where each decoded block and attribute came from, so that a rule broken by a decoded
// value names the line that set it (or the block that should have).

import (
	"reflect"

	"github.com/hashicorp/hcl/v2"
)

type posKey struct {
	ptr   uintptr
	field string
}

type positions struct {
	ranges map[posKey]hcl.Range
}

func newPositions() *positions {
	return &positions{ranges: map[posKey]hcl.Range{}}
}

// block records the block that struct rv (addressable) was decoded from.
func (p *positions) block(rv reflect.Value, r hcl.Range) {
	p.ranges[posKey{rv.Addr().Pointer(), ""}] = r
}

// attr records where field of struct rv was set.
func (p *positions) attr(rv reflect.Value, field string, r hcl.Range) {
	p.ranges[posKey{rv.Addr().Pointer(), field}] = r
}

// of is where field of the struct at ptr was set, else where the struct's block is, else
// fallback.
func (p *positions) of(ptr any, field string, fallback hcl.Range) hcl.Range {
	addr := reflect.ValueOf(ptr).Pointer()
	if r, ok := p.ranges[posKey{addr, field}]; ok {
		return r
	}
	if r, ok := p.ranges[posKey{addr, ""}]; ok {
		return r
	}
	return fallback
}
