package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const deploy = "../"

var jobFiles = []string{deploy + "emporium.nomad.hcl", deploy + "scylla.nomad.hcl", deploy + "nats.nomad.hcl", deploy + "redis.nomad.hcl"}

func runArgs(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	status := run(args, &stdout, &stderr)
	return status, stdout.String(), stderr.String()
}

func TestEveryJobPassesWithEitherVarFile(t *testing.T) {
	for _, vars := range []string{"dev", "prod"} {
		args := []string{"check", "-var-file", deploy + vars + ".vars.hcl"}
		if vars == "prod" {
			args = append(args, "-policy", deploy+"autoscaler/emporium-policy.hcl")
		}
		status, stdout, stderr := runArgs(t, append(args, jobFiles...)...)
		if status != 0 {
			t.Fatalf("%s: status %d\n%s", vars, status, stderr)
		}
		if strings.Count(stdout, "ok: ") != len(jobFiles) {
			t.Fatalf("%s: %s", vars, stdout)
		}
	}
}

// Every rule and every decode failure class has a broken spec that must fail with its
// error at its line (the file's `# want:` and `# message:` header lines).
func TestEveryBrokenSpecFailsWithItsError(t *testing.T) {
	files, err := filepath.Glob("testdata/broken/*.hcl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no broken specs: %v", err)
	}
	covered := map[string]bool{}
	for _, file := range files {
		want, message := headers(t, file)
		args := []string{"check", "-var-file", deploy + "dev.vars.hcl", file}
		if strings.HasPrefix(filepath.Base(file), "policy-") {
			args = []string{"check", "-var-file", deploy + "prod.vars.hcl", "-policy", file, deploy + "emporium.nomad.hcl"}
		}
		status, _, stderr := runArgs(t, args...)
		if status != 1 {
			t.Errorf("%s: status %d, want 1\n%s", file, status, stderr)
			continue
		}
		found := false
		for _, line := range strings.Split(stderr, "\n") {
			found = found || (strings.Contains(line, want) && strings.Contains(line, message))
		}
		if !found {
			t.Errorf("%s: no error line with %q and %q in:\n%s", file, want, message, stderr)
		}
		covered[regexp.MustCompile(`\[([a-z-]+)\]`).FindStringSubmatch(want)[1]] = true
	}
	for _, rule := range []string{"decode", "count", "update", "scaling", "readyz", "kill", "cluster-port", "ports", "seeds", "node-id", "secrets", "env", "resources", "checks", "policy"} {
		if !covered[rule] {
			t.Errorf("rule %q has no broken spec", rule)
		}
	}
}

func headers(t *testing.T, file string) (string, string) {
	t.Helper()
	text, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(text), "\n", 3)
	want, ok1 := strings.CutPrefix(lines[0], "# want: ")
	message, ok2 := strings.CutPrefix(lines[1], "# message: ")
	if !ok1 || !ok2 {
		t.Fatalf("%s: first lines must be '# want: FILE:LINE: [rule]' and '# message: …'", file)
	}
	return want, message
}

func TestAVarFileNameNoJobDeclaresFails(t *testing.T) {
	status, _, stderr := runArgs(t, append([]string{"check", "-var-file", "testdata/typo.vars.hcl"}, jobFiles...)...)
	if status != 1 || !strings.Contains(stderr, `testdata/typo.vars.hcl:9: [decode] Undefined variable: "nats_streem"`) {
		t.Fatalf("status %d:\n%s", status, stderr)
	}
}

func TestRenderGivesTheDrillTheJobAsAnAllocationSeesIt(t *testing.T) {
	status, stdout, stderr := runArgs(t, "render", "-var-file", deploy+"dev.vars.hcl", "-var", "nats_stream=DRILL",
		"-service", "emporium-cluster=10.0.0.1:7100,10.0.0.2:7100", "-env", "NOMAD_ADDR_cluster=10.0.0.2:7100",
		"-nomad-var", "nomad/jobs/emporium:cluster_secret=c", "-nomad-var", "nomad/jobs/emporium:jwt_secret=j",
		"-nomad-var", "nomad/jobs/emporium:admin_email=a@example.com", "-nomad-var", "nomad/jobs/emporium:admin_password=p",
		deploy+"emporium.nomad.hcl")
	if status != 0 {
		t.Fatalf("status %d: %s", status, stderr)
	}
	var out rendered
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatal(err)
	}
	checks := map[string]bool{
		"runtime interpolation kept": out.Env["EMPORIUM_HTTP_ADDR"] == "${NOMAD_ADDR_http}",
		"-var applied":               out.Env["EMPORIUM_NATS_STREAM"] == "DRILL",
		"var file applied":           out.Command == "/opt/emporium/target/release/emporium",
		"args":                       len(out.Args) == 2 && out.Args[1] == "emporium-${NOMAD_ALLOC_ID}",
		"seeds without itself":       out.TemplateEnv["EMPORIUM_SEEDS"] == "10.0.0.1:7100,",
		"secret from the variable":   out.TemplateEnv["EMPORIUM_CLUSTER_SECRET"] == "c",
		"kill":                       out.KillSignal == "SIGTERM" && out.KillTimeout == 45000,
		"ready check":                out.ReadyCheck.Path == "/readyz" && out.ReadyCheck.Interval == 2000,
		"drain":                      out.Drain["total"] == 40000,
		"static cluster port":        out.Ports["cluster"] == 7100,
	}
	for name, ok := range checks {
		if !ok {
			t.Errorf("%s: %s", name, stdout)
		}
	}
}

func TestRenderRefusesAMissingNomadVariable(t *testing.T) {
	status, _, stderr := runArgs(t, "render", "-var-file", deploy+"dev.vars.hcl", deploy+"emporium.nomad.hcl")
	if status != 1 || !strings.Contains(stderr, `no Nomad variable at "nomad/jobs/emporium"`) {
		t.Fatalf("status %d: %s", status, stderr)
	}
}

// The drain budget's numbers are the node's: a change in src/node.rs or in the default
// request timeout must fail here until drain.go follows.
func TestDrainBudgetMatchesTheNode(t *testing.T) {
	node := read(t, "../../../src/node.rs")
	for _, want := range []string{
		"const HANDOVER_DEADLINE: Duration = Duration::from_secs(20);",
		"const DRAIN_DEADLINE: Duration = Duration::from_secs(10);",
	} {
		if !strings.Contains(node, want) {
			t.Errorf("src/node.rs no longer has %q: update drain.go", want)
		}
	}
	if handoverDeadline.Seconds() != 20 || actorDrainDeadline.Seconds() != 10 || defaultRequestTimeout.Seconds() != 10 {
		t.Errorf("drain.go differs from the values asserted above")
	}
	readme := read(t, "../../../cluster-config/README.md")
	if !strings.Contains(readme, "| `request_timeout` | `EMPORIUM_REQUEST_TIMEOUT` | `--request-timeout` | `10s` |") {
		t.Errorf("the default request_timeout changed: update defaultRequestTimeout")
	}
}

func TestKnownMetricsAreExportedByTheNode(t *testing.T) {
	sources := read(t, "../../../http-edge/src/observe.rs") + read(t, "../../../runtime/src/lifecycle.rs")
	for _, name := range knownMetrics {
		if !strings.Contains(sources, `"`+name+`"`) {
			t.Errorf("%s is not exported by the node any more", name)
		}
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(text)
}
