// nomad-check decodes Nomad job files strictly into the Nomad API's job types and checks
// what an Emporium cluster needs of them; `render` prints what the node job means for one
// allocation, as JSON. See deploy/nomad/README.md.
//
//	nomad-check [check] [-var-file F]… [-var k=v]… [-policy P] JOB…
//	nomad-check render [-var-file F]… [-var k=v]… [-service name=host:port,…]…
//	                   [-nomad-var path:key=value]… [-env NAME=value]… JOB
//
// Exit status: 0 when every file passes, 1 when any decode error or broken rule was found
// (each printed as file:line: …), 2 for a bad command line.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole command, for tests: its exit status.
func run(args []string, stdout, stderr io.Writer) int {
	mode := "check"
	if len(args) > 0 && (args[0] == "check" || args[0] == "render") {
		mode, args = args[0], args[1:]
	}
	flags := flag.NewFlagSet("nomad-check "+mode, flag.ContinueOnError)
	flags.SetOutput(stderr)
	var varFiles, vars, services, nomadVars, envs listFlag
	flags.Var(&varFiles, "var-file", "an HCL file of variable values (repeatable)")
	flags.Var(&vars, "var", "a variable value, name=value (repeatable)")
	policy := flags.String("policy", "", "check mode: a Nomad Autoscaler policy file to check against the job")
	flags.Var(&services, "service", "render mode: registrations nomadService lists, name=host:port,… (repeatable)")
	flags.Var(&nomadVars, "nomad-var", "render mode: a Nomad variable item, path:key=value (repeatable)")
	flags.Var(&envs, "env", "render mode: the task environment templates read, NAME=value (repeatable)")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	in := inputs{varFiles: varFiles, vars: map[string]string{}}
	for _, v := range vars {
		name, value, ok := strings.Cut(v, "=")
		if !ok {
			fmt.Fprintf(stderr, "-var %q: expected name=value\n", v)
			return 2
		}
		in.vars[name] = value
	}
	if flags.NArg() == 0 || (mode == "render" && flags.NArg() != 1) {
		fmt.Fprintln(stderr, "usage: nomad-check [check|render] [flags] JOB… (render takes one JOB)")
		return 2
	}
	if mode == "render" {
		return runRender(flags.Arg(0), in, services, nomadVars, envs, stdout, stderr)
	}
	return runCheck(flags.Args(), in, *policy, stdout, stderr)
}

func runCheck(files []string, in inputs, policy string, stdout, stderr io.Writer) int {
	status := 0
	// A var file's name that no job of the run declares is a typo, or a leftover.
	unused := map[string]hcl.Range{}
	declared := map[string]bool{}
	for _, file := range files {
		findings, l := checkFile(file, in, policy)
		if l != nil {
			for name, r := range l.undeclared {
				unused[name] = r
			}
			for name := range varNames(l) {
				declared[name] = true
			}
		} else {
			declared["*"] = true // a file that did not load may declare anything
		}
		for _, f := range findings {
			fmt.Fprintln(stderr, f)
		}
		if len(findings) > 0 {
			status = 1
			continue
		}
		fmt.Fprintf(stdout, "ok: %s (var files: %s)\n", file, strings.Join(in.varFiles, ", "))
	}
	for _, name := range sortedKeys(unused) {
		if !declared[name] && !declared["*"] {
			fmt.Fprintln(stderr, finding{rng: unused[name], rule: "decode", msg: fmt.Sprintf("Undefined variable: %q is set in a var file but no job file declares it", name)})
			status = 1
		}
	}
	return status
}

// checkFile decodes one job file and applies every rule (and the policy's, if given).
func checkFile(file string, in inputs, policy string) ([]finding, *loaded) {
	l, diags := loadJob(file, in)
	if diags.HasErrors() {
		return diagFindings(diags), nil
	}
	findings := checkJob(l)
	if policy != "" && nodeGroupOf(l) != nil {
		findings = append(findings, checkPolicy(policy, l)...)
	}
	return findings, l
}

// varNames are the variables the job declares.
func varNames(l *loaded) map[string]bool {
	names := map[string]bool{}
	value := l.eval.ctx.Variables["var"]
	if value.IsKnown() && !value.IsNull() && value.Type().IsObjectType() {
		for name := range value.Type().AttributeTypes() {
			names[name] = true
		}
	}
	return names
}

func runRender(file string, in inputs, services, nomadVars, envs []string, stdout, stderr io.Writer) int {
	l, diags := loadJob(file, in)
	if diags.HasErrors() {
		for _, f := range diagFindings(diags) {
			fmt.Fprintln(stderr, f)
		}
		return 1
	}
	for _, name := range sortedKeys(l.undeclared) {
		fmt.Fprintln(stderr, finding{rng: l.undeclared[name], rule: "decode", msg: fmt.Sprintf("Undefined variable: %q is not declared by %s", name, file)})
		return 1
	}
	w, err := worldFrom(services, nomadVars, envs)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	out, err := render(l, w)
	if err == nil {
		encoder := json.NewEncoder(stdout)
		encoder.SetIndent("", "  ")
		err = encoder.Encode(out)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

func worldFrom(services, nomadVars, envs []string) (*world, error) {
	w := &world{env: map[string]string{}}
	var err error
	if w.services, err = parseServices(services); err != nil {
		return nil, err
	}
	if w.vars, err = parseNomadVars(nomadVars); err != nil {
		return nil, err
	}
	for _, e := range envs {
		name, value, ok := strings.Cut(e, "=")
		if !ok {
			return nil, errors.New("-env " + e + ": expected NAME=value")
		}
		w.env[name] = value
	}
	return w, nil
}

// diagFindings turns HCL diagnostics into findings (rule "decode"), file:line first.
func diagFindings(diags hcl.Diagnostics) []finding {
	var findings []finding
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		msg := d.Summary
		if d.Detail != "" {
			msg += ": " + d.Detail
		}
		r := hcl.Range{Filename: "(command line)"}
		if d.Subject != nil {
			r = *d.Subject
		}
		findings = append(findings, finding{rng: r, rule: "decode", msg: msg})
	}
	return findings
}
