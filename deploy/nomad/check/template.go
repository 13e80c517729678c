package main

// Nomad `template` blocks, parsed and rendered with Go's text/template (the engine Nomad's
// templates run on) and the few template functions the jobs here use: `env` (the task's
// environment), `nomadService` (Nomad's native service discovery) and `nomadVar` (Nomad
// variables, where the secrets live). A template calling any other function does not parse.

import (
	"fmt"
	"sort"
	"strings"
	"text/template"

	"github.com/hashicorp/nomad/api"
)

// serviceEntry is one registration as `nomadService` lists it.
type serviceEntry struct {
	Name    string
	Address string
	Port    int
}

// world is what templates read: registrations by service name, variables by path, the
// task's environment.
type world struct {
	services map[string][]serviceEntry
	vars     map[string]map[string]string
	env      map[string]string
}

func (w *world) funcs() template.FuncMap {
	return template.FuncMap{
		"env": func(name string) string { return w.env[name] },
		"nomadService": func(name string) []serviceEntry {
			return w.services[name]
		},
		"nomadVar": func(path string) (map[string]string, error) {
			items, ok := w.vars[path]
			if !ok {
				return nil, fmt.Errorf("no Nomad variable at %q", path)
			}
			return items, nil
		},
	}
}

func parseTemplate(data string, tmpl *api.Template) (*template.Template, error) {
	return parseWith(data, tmpl, (&world{}).funcs())
}

func parseWith(data string, tmpl *api.Template, funcs template.FuncMap) (*template.Template, error) {
	left, right := "{{", "}}"
	if tmpl.LeftDelim != nil {
		left = *tmpl.LeftDelim
	}
	if tmpl.RightDelim != nil {
		right = *tmpl.RightDelim
	}
	return template.New(deref(tmpl.DestPath)).Delims(left, right).Funcs(funcs).Option("missingkey=error").Parse(data)
}

// renderTemplate executes one template against w.
func renderTemplate(tmpl *api.Template, w *world) (string, error) {
	parsed, err := parseWith(deref(tmpl.EmbeddedTmpl), tmpl, w.funcs())
	if err != nil {
		return "", err
	}
	var out strings.Builder
	if err := parsed.Execute(&out, nil); err != nil {
		return "", err
	}
	return out.String(), nil
}

// parseEnvFile reads a rendered env template: KEY=VALUE lines, blank lines and # comments
// skipped, one pair of surrounding quotes removed.
func parseEnvFile(text string) (map[string]string, error) {
	env := map[string]string{}
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(key) == "" {
			return nil, fmt.Errorf("line %d of the rendered env is not KEY=VALUE: %q", i+1, line)
		}
		value = strings.TrimSpace(value)
		if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') && value[len(value)-1] == value[0] {
			value = value[1 : len(value)-1]
		}
		env[strings.TrimSpace(key)] = value
	}
	return env, nil
}

// parseServices reads `-service name=host:port,host:port` flag values.
func parseServices(flags []string) (map[string][]serviceEntry, error) {
	services := map[string][]serviceEntry{}
	for _, flag := range flags {
		name, list, ok := strings.Cut(flag, "=")
		if !ok {
			return nil, fmt.Errorf("-service %q: expected name=host:port,…", flag)
		}
		services[name] = services[name][:0:0]
		for _, addr := range strings.Split(list, ",") {
			if addr == "" {
				continue
			}
			host, port, ok := strings.Cut(addr, ":")
			var n int
			if _, err := fmt.Sscanf(port, "%d", &n); !ok || err != nil {
				return nil, fmt.Errorf("-service %q: %q is not host:port", flag, addr)
			}
			services[name] = append(services[name], serviceEntry{Name: name, Address: host, Port: n})
		}
	}
	return services, nil
}

// parseNomadVars reads `-nomad-var path:key=value` flag values.
func parseNomadVars(flags []string) (map[string]map[string]string, error) {
	vars := map[string]map[string]string{}
	for _, flag := range flags {
		pathKey, value, ok := strings.Cut(flag, "=")
		path, key, ok2 := strings.Cut(pathKey, ":")
		if !ok || !ok2 {
			return nil, fmt.Errorf("-nomad-var %q: expected path:key=value", flag)
		}
		if vars[path] == nil {
			vars[path] = map[string]string{}
		}
		vars[path][key] = value
	}
	return vars, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
