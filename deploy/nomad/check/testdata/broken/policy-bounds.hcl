# want: policy-bounds.hcl:14: [policy]
# message: policy bounds [3, 20] must lie within the group's scaling bounds [3, 12]
# (autoscaler/emporium-policy.hcl with one change; checked against emporium.nomad.hcl with -var-file prod.vars.hcl)
# Nomad Autoscaler policy for the node group of deploy/nomad/emporium.nomad.hcl (production
# bounds; prod.vars.hcl). Load it with the autoscaler agent's `policy { dir = "…" }`.
#
# The metric: storefront requests per second per node, from emporium_http_requests_total
# (http-edge/src/observe.rs) as Prometheus scrapes every node's /metrics (scrape job
# "emporium", e.g. nomad_sd_configs on the service emporium-http). The target-value
# strategy keeps count near (current count × value / target): 150 requests/s per node.

scaling "emporium_node" {
  enabled = true
  min     = 3
  max     = 20

  policy {
    evaluation_interval = "30s"
    cooldown            = "3m"
    on_check_error      = "fail"

    check "requests_per_node" {
      source       = "prometheus"
      query_window = "2m"
      query        = "sum(rate(emporium_http_requests_total{job=\"emporium\",route=~\"/v1/.*\"}[2m])) / count(count by (instance) (emporium_http_requests_total{job=\"emporium\"}))"

      strategy "target-value" {
        target = 150
      }
    }

    target "nomad" {
      Namespace = "default"
      Job       = "emporium"
      Group     = "node"
    }
  }
}
