package main

// The Nomad Autoscaler policy file of the node group: decoded as strictly as a job (same
// decoder, the policy's own schema), then checked against the job it scales: the target
// names the job and its node group, the bounds stay within the group's scaling block, and
// the check is a Prometheus query on a metric an Emporium node really exports, with the
// target-value strategy.

import (
	"github.com/hashicorp/nomad/api"
	"reflect"
	"regexp"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// knownMetrics are the series an Emporium node exports (http-edge/src/observe.rs,
// runtime/src/lifecycle.rs); policy_test.go checks each still appears there.
var knownMetrics = []string{
	"emporium_http_requests_total",
	"emporium_http_request_duration_seconds",
	"emporium_actors_active",
	"emporium_actor_activations_total",
	"emporium_forwarded_requests_total",
}

var metricName = regexp.MustCompile(`emporium_[a-z_]+`)

type policyFile struct {
	Scaling []*policyScaling `hcl:"scaling,block"`
}

type policyScaling struct {
	Name    string      `hcl:"name,label"`
	Enabled *bool       `hcl:"enabled,optional"`
	Min     *int64      `hcl:"min"`
	Max     *int64      `hcl:"max"`
	Policy  *policyBody `hcl:"policy,block"`
}

type policyBody struct {
	Cooldown           *time.Duration `hcl:"cooldown,optional"`
	EvaluationInterval *time.Duration `hcl:"evaluation_interval,optional"`
	OnCheckError       *string        `hcl:"on_check_error,optional"`
	Checks             []*policyCheck `hcl:"check,block"`
	Target             *policyTarget  `hcl:"target,block"`
}

type policyCheck struct {
	Name        string          `hcl:"name,label"`
	Source      string          `hcl:"source"`
	Query       string          `hcl:"query"`
	QueryWindow *time.Duration  `hcl:"query_window,optional"`
	Strategy    *policyStrategy `hcl:"strategy,block"`
}

type policyStrategy struct {
	Name   string   `hcl:"name,label"`
	Target *float64 `hcl:"target"`
}

type policyTarget struct {
	Name      string `hcl:"name,label"`
	Namespace string `hcl:"Namespace,optional"`
	Job       string `hcl:"Job"`
	Group     string `hcl:"Group"`
}

func loadPolicy(path string) (*policyFile, *positions, hcl.Diagnostics) {
	parser := hclparse.NewParser()
	file, diags := parser.ParseHCLFile(path)
	if diags.HasErrors() {
		return nil, nil, diags
	}
	policy := &policyFile{}
	pos := newPositions()
	dec := &decoder{eval: newEvaluator(map[string][]byte{path: file.Bytes}), pos: pos}
	rv := reflect.ValueOf(policy).Elem()
	return policy, pos, dec.decodeStruct(file.Body, rv)
}

// checkPolicy checks the policy file at path against the node group of l.
func checkPolicy(path string, l *loaded) []finding {
	policy, pos, diags := loadPolicy(path)
	if diags.HasErrors() {
		return diagFindings(diags)
	}
	c := &checker{l: &loaded{pos: pos, jobRange: hcl.Range{Filename: path, Start: hcl.InitialPos}}}
	if len(policy.Scaling) != 1 {
		c.fail(c.l.jobRange, "policy", "the policy file must hold exactly one scaling policy")
		return c.findings
	}
	s := policy.Scaling[0]
	group := nodeGroupOf(l)
	if group == nil || group.Scaling == nil || group.Scaling.Min == nil || group.Scaling.Max == nil {
		c.fail(c.at(s, ""), "policy", "%s has no node group with scaling bounds to check the policy against", l.file)
		return c.findings
	}
	if *s.Min < *group.Scaling.Min || *s.Max > *group.Scaling.Max || *s.Min > *s.Max {
		c.fail(c.at(s, "min"), "policy", "policy bounds [%d, %d] must lie within the group's scaling bounds [%d, %d]", *s.Min, *s.Max, *group.Scaling.Min, *group.Scaling.Max)
	}
	if s.Policy == nil || s.Policy.Target == nil || len(s.Policy.Checks) == 0 {
		c.fail(c.at(s, ""), "policy", "the policy needs a target and at least one check")
		return c.findings
	}
	target := s.Policy.Target
	if target.Job != deref(l.job.ID) || target.Group != deref(group.Name) {
		c.fail(c.at(target, ""), "policy", "the target must be job %q group %q, got job %q group %q", deref(l.job.ID), deref(group.Name), target.Job, target.Group)
	}
	if s.Policy.EvaluationInterval == nil || s.Policy.Cooldown == nil {
		c.fail(c.at(s.Policy, ""), "policy", "the policy must set evaluation_interval and cooldown")
	}
	for _, check := range s.Policy.Checks {
		c.checkPolicyCheck(check)
	}
	return c.findings
}

func (c *checker) checkPolicyCheck(check *policyCheck) {
	if check.Source != "prometheus" {
		c.fail(c.at(check, "source"), "policy", "check %q: source must be \"prometheus\"", check.Name)
	}
	known := map[string]bool{}
	for _, name := range knownMetrics {
		known[name] = true
	}
	used := metricName.FindAllString(check.Query, -1)
	if len(used) == 0 {
		c.fail(c.at(check, "query"), "policy", "check %q: the query uses no Emporium metric", check.Name)
	}
	for _, name := range used {
		base := regexp.MustCompile(`_(bucket|sum|count)$`).ReplaceAllString(name, "")
		if !known[base] {
			c.fail(c.at(check, "query"), "policy", "check %q: %s is not a metric an Emporium node exports", check.Name, name)
		}
	}
	if check.Strategy == nil || check.Strategy.Name != "target-value" || check.Strategy.Target == nil || *check.Strategy.Target <= 0 {
		c.fail(c.at(check, ""), "policy", "check %q: strategy must be \"target-value\" with a positive target", check.Name)
	}
}

// nodeGroupOf is the job's Emporium node group, if any.
func nodeGroupOf(l *loaded) *api.TaskGroup {
	for _, group := range l.job.TaskGroups {
		if nodeTask(group) != nil {
			return group
		}
	}
	return nil
}
