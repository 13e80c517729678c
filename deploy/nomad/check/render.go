package main

// The render mode: what running the node job means for one allocation, as JSON, for the
// scaling drill (tests/blackbox/nomad_drill.rs), which starts nodes exactly so instead of
// repeating the job's values. Runtime interpolations (${NOMAD_ADDR_http}, …) stay literal
// for the caller to fill in as a Nomad client would; env templates are rendered against the
// services, Nomad variables and task environment given on the command line.

import (
	"fmt"
	"time"

	"github.com/hashicorp/nomad/api"
)

type rendered struct {
	Job         string            `json:"job"`
	Group       string            `json:"group"`
	Task        string            `json:"task"`
	Count       int               `json:"count"`
	ScalingMin  int64             `json:"scaling_min"`
	ScalingMax  int64             `json:"scaling_max"`
	Driver      string            `json:"driver"`
	Command     string            `json:"command"`
	Args        []string          `json:"args"`
	Env         map[string]string `json:"env"`
	TemplateEnv map[string]string `json:"template_env"`
	KillSignal  string            `json:"kill_signal"`
	KillTimeout int64             `json:"kill_timeout_ms"`
	// ShutdownDelay is how long Nomad waits between deregistering the services and sending
	// kill_signal.
	ShutdownDelay int64            `json:"shutdown_delay_ms"`
	Update        renderedUpdate   `json:"update"`
	ReadyCheck    renderedCheck    `json:"ready_check"`
	HealthCheck   renderedCheck    `json:"health_check"`
	Ports         map[string]int   `json:"ports"`
	Drain         map[string]int64 `json:"drain_ms"`
}

type renderedUpdate struct {
	MaxParallel      int    `json:"max_parallel"`
	HealthCheck      string `json:"health_check"`
	MinHealthyTime   int64  `json:"min_healthy_time_ms"`
	HealthyDeadline  int64  `json:"healthy_deadline_ms"`
	ProgressDeadline int64  `json:"progress_deadline_ms"`
	AutoRevert       bool   `json:"auto_revert"`
}

type renderedCheck struct {
	Service  string `json:"service"`
	Port     string `json:"port"`
	Path     string `json:"path"`
	Interval int64  `json:"interval_ms"`
	Timeout  int64  `json:"timeout_ms"`
}

func ms(d *time.Duration) int64 {
	if d == nil {
		return 0
	}
	return d.Milliseconds()
}

// render describes the node group of l for one allocation in w.
func render(l *loaded, w *world) (*rendered, error) {
	group := nodeGroupOf(l)
	if group == nil {
		return nil, fmt.Errorf("%s: no group runs an Emporium node (a task with EMPORIUM_CLUSTER_ADDR in its env)", l.file)
	}
	task := nodeTask(group)
	budget, err := nodeBudget(task)
	if err != nil {
		return nil, err
	}
	out := &rendered{
		Job: deref(l.job.ID), Group: deref(group.Name), Task: task.Name, Count: deref(group.Count),
		Driver: task.Driver, Env: task.Env, TemplateEnv: map[string]string{},
		KillSignal: task.KillSignal, KillTimeout: ms(task.KillTimeout), Ports: map[string]int{},
		Drain: map[string]int64{
			"handover": budget.Handover.Milliseconds(), "in_flight": budget.InFlight.Milliseconds(),
			"actors": budget.Actors.Milliseconds(), "total": budget.Total.Milliseconds(),
		},
	}
	if group.Scaling != nil {
		out.ScalingMin, out.ScalingMax = deref(group.Scaling.Min), deref(group.Scaling.Max)
	}
	out.ShutdownDelay = task.ShutdownDelay.Milliseconds()
	if group.ShutdownDelay != nil {
		out.ShutdownDelay = ms(group.ShutdownDelay)
	}
	out.Command, _ = task.Config["command"].(string)
	args, _ := task.Config["args"].([]any)
	for _, arg := range args {
		out.Args = append(out.Args, fmt.Sprint(arg))
	}
	if u, _ := update(l.job, group); u != nil {
		out.Update = renderedUpdate{
			MaxParallel: deref(u.MaxParallel), HealthCheck: deref(u.HealthCheck), MinHealthyTime: ms(u.MinHealthyTime),
			HealthyDeadline: ms(u.HealthyDeadline), ProgressDeadline: ms(u.ProgressDeadline), AutoRevert: deref(u.AutoRevert),
		}
	}
	for _, network := range group.Networks {
		for _, port := range append(append([]api.Port{}, network.ReservedPorts...), network.DynamicPorts...) {
			out.Ports[port.Label] = port.Value
		}
	}
	out.ReadyCheck, out.HealthCheck = httpCheck(group, readyPath), httpCheck(group, healthPath)
	for _, tmpl := range task.Templates {
		if tmpl.Envvars == nil || !*tmpl.Envvars {
			continue
		}
		text, err := renderTemplate(tmpl, w)
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", deref(tmpl.DestPath), err)
		}
		env, err := parseEnvFile(text)
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", deref(tmpl.DestPath), err)
		}
		for k, v := range env {
			out.TemplateEnv[k] = v
		}
	}
	return out, nil
}

func httpCheck(group *api.TaskGroup, path string) renderedCheck {
	for _, service := range allServices(group) {
		for _, check := range service.Checks {
			if check.Type == "http" && check.Path == path {
				return renderedCheck{
					Service: service.Name, Port: cmpOr(check.PortLabel, service.PortLabel), Path: path,
					Interval: check.Interval.Milliseconds(), Timeout: check.Timeout.Milliseconds(),
				}
			}
		}
	}
	return renderedCheck{}
}
