package main

// The rules a job must meet beyond decoding. Every job: each group's count, declared
// ports, service checks and task resources. A group that runs an Emporium node (a task
// whose env sets EMPORIUM_CLUSTER_ADDR) also: rolling updates gated on health checks,
// checks on /readyz and /healthz, SIGTERM with a kill_timeout above the node's drain, a
// static cluster port registered for discovery, seeds rendered from it, a node id unique
// per allocation, secrets only through templates, and scaling bounds.

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/nomad/api"
)

// finding is one broken rule, at the line that broke it.
type finding struct {
	rng  hcl.Range
	rule string
	msg  string
}

func (f finding) String() string {
	return fmt.Sprintf("%s:%d: [%s] %s", f.rng.Filename, f.rng.Start.Line, f.rule, f.msg)
}

// Names the node job must use (the seeds template looks the cluster service up by name).
const (
	clusterService   = "emporium-cluster"
	readyPath        = "/readyz"
	healthPath       = "/healthz"
	maxReadyInterval = 5 * time.Second
)

// Secret settings that must never be written in a job's env block (they would be part of
// the job's spec, readable by anyone who may read the job).
var secretEnv = []string{"EMPORIUM_CLUSTER_SECRET", "EMPORIUM_JWT_SECRET", "EMPORIUM_ADMIN_PASSWORD", "EMPORIUM_SCYLLA_PASSWORD"}

// portRef finds the port label in a runtime interpolation like ${NOMAD_ADDR_http}.
var portRef = regexp.MustCompile(`\$\{NOMAD_(?:ADDR|IP|PORT|HOST_PORT|HOST_IP|HOST_ADDR|ALLOC_PORT|ALLOC_IP|ALLOC_ADDR)_([A-Za-z0-9_]+)\}`)

type checker struct {
	l        *loaded
	findings []finding
}

func (c *checker) fail(rng hcl.Range, rule, format string, args ...any) {
	c.findings = append(c.findings, finding{rng: rng, rule: rule, msg: fmt.Sprintf(format, args...)})
}

func (c *checker) at(ptr any, field string) hcl.Range {
	return c.l.pos.of(ptr, field, c.l.jobRange)
}

// checkJob runs every rule on a decoded job.
func checkJob(l *loaded) []finding {
	c := &checker{l: l}
	if len(l.job.TaskGroups) == 0 {
		c.fail(l.jobRange, "count", "the job has no group")
	}
	for _, group := range l.job.TaskGroups {
		c.checkGroup(group)
		if nodeTask(group) != nil {
			c.checkNodeGroup(group)
		}
	}
	sort.SliceStable(c.findings, func(i, j int) bool { return c.findings[i].rng.Start.Line < c.findings[j].rng.Start.Line })
	return c.findings
}

// nodeTask is the group's Emporium node task, if it runs one.
func nodeTask(group *api.TaskGroup) *api.Task {
	for _, task := range group.Tasks {
		if _, ok := task.Env["EMPORIUM_CLUSTER_ADDR"]; ok {
			return task
		}
	}
	return nil
}

func (c *checker) checkGroup(group *api.TaskGroup) {
	if group.Count == nil || *group.Count < 1 {
		c.fail(c.at(group, "count"), "count", "group %q: count must be set and at least 1", deref(group.Name))
	}
	declared := c.checkPorts(group)
	for _, service := range allServices(group) {
		c.checkService(service, declared)
	}
	for _, task := range group.Tasks {
		if task.Resources == nil || task.Resources.CPU == nil || task.Resources.MemoryMB == nil {
			c.fail(c.at(task, "resources"), "resources", "task %q: resources must set cpu and memory", task.Name)
		}
		for _, text := range taskTexts(task) {
			for _, m := range portRef.FindAllStringSubmatch(text, -1) {
				if _, ok := declared[m[1]]; !ok {
					c.fail(c.at(task, "env"), "ports", "task %q uses port %q (%s), which the group's network does not declare", task.Name, m[1], m[0])
				}
			}
		}
	}
}

// checkPorts returns the group's declared ports by label, and flags duplicates.
func (c *checker) checkPorts(group *api.TaskGroup) map[string]api.Port {
	declared := map[string]api.Port{}
	for _, network := range group.Networks {
		for _, port := range append(append([]api.Port{}, network.ReservedPorts...), network.DynamicPorts...) {
			if _, dup := declared[port.Label]; dup {
				c.fail(c.at(network, "port"), "ports", "port %q is declared twice", port.Label)
			}
			declared[port.Label] = port
		}
	}
	return declared
}

func (c *checker) checkService(service *api.Service, declared map[string]api.Port) {
	if _, ok := declared[service.PortLabel]; service.PortLabel != "" && !ok {
		c.fail(c.at(service, "port"), "ports", "service %q uses port %q, which the group's network does not declare", service.Name, service.PortLabel)
	}
	if len(service.Checks) == 0 {
		c.fail(c.at(service, ""), "checks", "service %q has no check", service.Name)
	}
	for i := range service.Checks {
		check := &service.Checks[i]
		where := c.at(check, "")
		if _, ok := declared[check.PortLabel]; check.PortLabel != "" && !ok {
			c.fail(c.at(check, "port"), "ports", "check %q uses port %q, which the group's network does not declare", check.Name, check.PortLabel)
		}
		if check.Interval <= 0 || check.Timeout <= 0 || check.Timeout >= check.Interval {
			c.fail(where, "checks", "check %q: interval and timeout must be set, the timeout shorter than the interval", check.Name)
		}
		if check.Type == "http" && check.Path == "" {
			c.fail(where, "checks", "http check %q has no path", check.Name)
		}
	}
}

func (c *checker) checkNodeGroup(group *api.TaskGroup) {
	task := nodeTask(group)
	c.checkUpdate(group)
	c.checkScaling(group)
	c.checkNodeChecks(group, task)
	c.checkKill(task)
	c.checkClusterPort(group, task)
	c.checkSeeds(task)
	c.checkNodeEnv(task)
}

// update is the group's update block over the job's, field by field, as Nomad merges them.
func update(job *api.Job, group *api.TaskGroup) (*api.UpdateStrategy, any) {
	if job.Update == nil && group.Update == nil {
		return nil, nil
	}
	merged := &api.UpdateStrategy{}
	var where any = group
	if job.Update != nil {
		*merged = *job.Update
		where = job.Update
	}
	if group.Update != nil {
		merged.Merge(group.Update)
		where = group.Update
	}
	return merged, where
}

func (c *checker) checkUpdate(group *api.TaskGroup) {
	u, where := update(c.l.job, group)
	if u == nil {
		c.fail(c.at(group, ""), "update", "group %q: an update block is required (rolling deploys gated on health checks)", deref(group.Name))
		return
	}
	at := func(field string) hcl.Range { return c.at(where, field) }
	if deref(u.HealthCheck) != "checks" {
		c.fail(at("health_check"), "update", "health_check must be \"checks\" (a new node counts as healthy only once /readyz passes)")
	}
	if u.MaxParallel == nil || *u.MaxParallel != 1 {
		c.fail(at("max_parallel"), "update", "max_parallel must be 1 (one node hands its shards over at a time)")
	}
	if u.MinHealthyTime == nil || *u.MinHealthyTime <= 0 {
		c.fail(at("min_healthy_time"), "update", "min_healthy_time must be set and positive")
	}
	if u.HealthyDeadline == nil || u.MinHealthyTime == nil || *u.HealthyDeadline <= *u.MinHealthyTime {
		c.fail(at("healthy_deadline"), "update", "healthy_deadline must be set and longer than min_healthy_time")
	}
	if u.ProgressDeadline != nil && u.HealthyDeadline != nil && *u.ProgressDeadline != 0 && *u.ProgressDeadline <= *u.HealthyDeadline {
		c.fail(at("progress_deadline"), "update", "progress_deadline must be longer than healthy_deadline")
	}
	if u.AutoRevert == nil || !*u.AutoRevert {
		c.fail(at("auto_revert"), "update", "auto_revert must be true (a deploy whose nodes never become ready goes back)")
	}
}

func (c *checker) checkScaling(group *api.TaskGroup) {
	s := group.Scaling
	if s == nil {
		c.fail(c.at(group, ""), "scaling", "group %q: a scaling block with min and max is required", deref(group.Name))
		return
	}
	where := c.at(s, "")
	if s.Enabled != nil && !*s.Enabled {
		c.fail(c.at(s, "enabled"), "scaling", "scaling must be enabled")
	}
	if s.Min == nil || s.Max == nil {
		c.fail(where, "scaling", "scaling must set min and max")
		return
	}
	if *s.Min < 1 || *s.Max < *s.Min {
		c.fail(c.at(s, "min"), "scaling", "scaling bounds must satisfy 1 <= min <= max, got min %d max %d", *s.Min, *s.Max)
	}
	if group.Count != nil && (int64(*group.Count) < *s.Min || int64(*group.Count) > *s.Max) {
		c.fail(c.at(group, "count"), "scaling", "count %d is outside the scaling bounds [%d, %d]", *group.Count, *s.Min, *s.Max)
	}
}

// checkNodeChecks: /readyz (what rolling deploys and load balancers follow) on the port the
// node serves HTTP on, often enough, and /healthz.
func (c *checker) checkNodeChecks(group *api.TaskGroup, task *api.Task) {
	httpPort := portLabel(task.Env["EMPORIUM_HTTP_ADDR"])
	var ready, healthy bool
	for _, service := range allServices(group) {
		for i := range service.Checks {
			check := &service.Checks[i]
			if check.Type != "http" {
				continue
			}
			port := cmpOr(check.PortLabel, service.PortLabel)
			switch check.Path {
			case readyPath:
				if port != httpPort {
					c.fail(c.at(check, ""), "readyz", "the /readyz check must use the port EMPORIUM_HTTP_ADDR is on (%q), not %q", httpPort, port)
				}
				if check.Interval > maxReadyInterval {
					c.fail(c.at(check, "interval"), "readyz", "the /readyz check interval %s is too long: a draining node must leave rotation within %s", check.Interval, maxReadyInterval)
				}
				ready = true
			case healthPath:
				healthy = true
			}
		}
	}
	if !ready {
		c.fail(c.at(group, ""), "readyz", "group %q: no http check on %s", deref(group.Name), readyPath)
	}
	if !healthy {
		c.fail(c.at(group, ""), "readyz", "group %q: no http check on %s", deref(group.Name), healthPath)
	}
}

func (c *checker) checkKill(task *api.Task) {
	if task.KillSignal != "SIGTERM" {
		c.fail(c.at(task, "kill_signal"), "kill", "kill_signal must be \"SIGTERM\" (the node drains on it), got %q", task.KillSignal)
	}
	budget, err := nodeBudget(task)
	if err != nil {
		c.fail(c.at(task, "env"), "kill", "%s", err)
		return
	}
	if task.KillTimeout == nil || *task.KillTimeout <= budget.Total {
		got := "unset (Nomad's default 5s)"
		if task.KillTimeout != nil {
			got = task.KillTimeout.String()
		}
		c.fail(c.at(task, "kill_timeout"), "kill", "kill_timeout must be longer than the node's drain, %s (hand-over %s + in-flight requests %s + actor turns %s); got %s",
			budget.Total, budget.Handover, budget.InFlight, budget.Actors, got)
	}
}

// nodeBudget is the drain budget for the request timeout the task's env sets.
func nodeBudget(task *api.Task) (drainBudget, error) {
	timeout := defaultRequestTimeout
	if text, ok := task.Env["EMPORIUM_REQUEST_TIMEOUT"]; ok {
		parsed, err := time.ParseDuration(text)
		if err != nil || parsed <= 0 {
			return drainBudget{}, fmt.Errorf("EMPORIUM_REQUEST_TIMEOUT %q is not a positive duration", text)
		}
		timeout = parsed
	}
	return budgetFor(timeout), nil
}

// checkClusterPort: the cluster address is on a static port (peers and seeds dial it) that
// is registered as the discovery service the seeds template reads.
func (c *checker) checkClusterPort(group *api.TaskGroup, task *api.Task) {
	label := portLabel(task.Env["EMPORIUM_CLUSTER_ADDR"])
	if label == "" {
		c.fail(c.at(task, "env"), "cluster-port", "EMPORIUM_CLUSTER_ADDR must be a port's address, like ${NOMAD_ADDR_cluster}")
		return
	}
	static := false
	for _, network := range group.Networks {
		for _, port := range network.ReservedPorts {
			static = static || port.Label == label
		}
	}
	if !static {
		c.fail(c.at(group, "network"), "cluster-port", "port %q (EMPORIUM_CLUSTER_ADDR) must be static", label)
	}
	for _, service := range allServices(group) {
		if service.Name == clusterService {
			if service.PortLabel != label || service.Provider != "nomad" {
				c.fail(c.at(service, ""), "cluster-port", "service %q must be on port %q with provider \"nomad\" (the seeds template reads it)", clusterService, label)
			}
			return
		}
	}
	c.fail(c.at(group, ""), "cluster-port", "no service %q registers the cluster port", clusterService)
}

// checkSeeds: EMPORIUM_SEEDS comes from a template over the discovery service, rendered
// into the env once, and never restarts a running node when the service list changes.
func (c *checker) checkSeeds(task *api.Task) {
	for _, tmpl := range task.Templates {
		data := deref(tmpl.EmbeddedTmpl)
		if !strings.Contains(data, "EMPORIUM_SEEDS") {
			continue
		}
		where := c.at(tmpl, "")
		if !strings.Contains(data, fmt.Sprintf("nomadService %q", clusterService)) {
			c.fail(c.at(tmpl, "data"), "seeds", "the EMPORIUM_SEEDS template must read nomadService %q", clusterService)
		}
		if tmpl.Envvars == nil || !*tmpl.Envvars {
			c.fail(where, "seeds", "the EMPORIUM_SEEDS template must set env = true")
		}
		if deref(tmpl.ChangeMode) != "noop" {
			c.fail(c.at(tmpl, "change_mode"), "seeds", "the EMPORIUM_SEEDS template must have change_mode = \"noop\": seeds matter only at start, and the default (restart) would restart every node whenever one joins or leaves")
		}
		if _, err := parseTemplate(data, tmpl); err != nil {
			c.fail(c.at(tmpl, "data"), "seeds", "the template does not parse: %s", err)
		}
		return
	}
	c.fail(c.at(task, ""), "seeds", "task %q: no template renders EMPORIUM_SEEDS", task.Name)
}

// checkNodeEnv: a shared store, NATS events, an HTTP address on a port, a node id unique per
// allocation, and no secret written in the job.
func (c *checker) checkNodeEnv(task *api.Task) {
	env := task.Env
	at := c.at(task, "env")
	if store := env["EMPORIUM_STORE"]; !strings.HasPrefix(store, "postgres://") && !strings.HasPrefix(store, "postgresql://") && !strings.HasPrefix(store, "scylla://") {
		c.fail(at, "env", "EMPORIUM_STORE must be a shared store (postgres:// or scylla://), got %q", store)
	}
	if events := env["EMPORIUM_EVENTS"]; !strings.HasPrefix(events, "nats://") {
		c.fail(at, "env", "EMPORIUM_EVENTS must be nats://… (required in cluster mode), got %q", events)
	}
	if portLabel(env["EMPORIUM_HTTP_ADDR"]) == "" {
		c.fail(at, "env", "EMPORIUM_HTTP_ADDR must be a port's address, like ${NOMAD_ADDR_http}")
	}
	if !strings.Contains(nodeID(task), "${NOMAD_ALLOC_ID}") {
		c.fail(at, "node-id", "the node id (--node-id, else EMPORIUM_NODE_ID) must contain ${NOMAD_ALLOC_ID}: a replacement may start while the allocation it replaces still drains, and of two processes with one node id the older is expelled")
	}
	for _, name := range secretEnv {
		if _, ok := env[name]; ok {
			c.fail(at, "secrets", "%s must come from a template (a Nomad variable), never from the env block", name)
		}
	}
	for _, name := range []string{"EMPORIUM_CLUSTER_SECRET", "EMPORIUM_JWT_SECRET"} {
		if !templatesSet(task, name) {
			c.fail(c.at(task, ""), "secrets", "no env template sets %s", name)
		}
	}
}

// nodeID is the node id the task starts with: the --node-id flag wins over the env.
func nodeID(task *api.Task) string {
	args, _ := task.Config["args"].([]any)
	for i, arg := range args {
		if arg == "--node-id" && i+1 < len(args) {
			return fmt.Sprint(args[i+1])
		}
	}
	return task.Env["EMPORIUM_NODE_ID"]
}

func templatesSet(task *api.Task, name string) bool {
	for _, tmpl := range task.Templates {
		if tmpl.Envvars != nil && *tmpl.Envvars && strings.Contains(deref(tmpl.EmbeddedTmpl), name+"=") {
			return true
		}
	}
	return false
}

// portLabel is the label of the port an address interpolation names ("" if none).
func portLabel(text string) string {
	if m := portRef.FindStringSubmatch(text); m != nil {
		return m[1]
	}
	return ""
}

func allServices(group *api.TaskGroup) []*api.Service {
	services := append([]*api.Service{}, group.Services...)
	for _, task := range group.Tasks {
		services = append(services, task.Services...)
	}
	return services
}

// taskTexts are the task's strings that may hold runtime interpolations.
func taskTexts(task *api.Task) []string {
	var texts []string
	for _, value := range task.Env {
		texts = append(texts, value)
	}
	for _, tmpl := range task.Templates {
		texts = append(texts, deref(tmpl.EmbeddedTmpl))
	}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			texts = append(texts, x)
		case []any:
			for _, item := range x {
				walk(item)
			}
		case map[string]any:
			for _, item := range x {
				walk(item)
			}
		}
	}
	walk(task.Config)
	return texts
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
