# want: update-healthy-deadline.nomad.hcl:93: [update]
# message: healthy_deadline must be set and longer than min_healthy_time
# (emporium.nomad.hcl with one change; checked with -var-file dev.vars.hcl)
# The Emporium node job: N identical nodes on one shared store (PostgreSQL or ScyllaDB) and
# one NATS JetStream, found by each other through Nomad's native service discovery.
#
#   nomad job run -var-file=deploy/nomad/prod.vars.hcl deploy/nomad/emporium.nomad.hcl
#
# Secrets are read from the Nomad variable at nomad/jobs/emporium (see README.md):
#   nomad var put nomad/jobs/emporium cluster_secret=… jwt_secret=… admin_email=… admin_password=…
#
# Checked by `scripts/nomad-check.sh` (deploy/nomad/check): decoded strictly, then the rules
# an Emporium cluster needs (README.md, "What the checker checks").

variable "emporium_bin" {
  type        = string
  description = "Path of the release binary (target/release/emporium) on every client"
}

variable "datacenters" {
  type    = list(string)
  default = ["dc1"]
}

variable "node_count" {
  type        = number
  description = "Nodes to start with; the autoscaler moves it within [scaling_min, scaling_max]"
}

variable "scaling_min" {
  type = number
}

variable "scaling_max" {
  type = number
}

variable "store" {
  type        = string
  description = "postgres://USER@HOST:5432/DB or scylla://HOST:9042,HOST:9042/KEYSPACE"
}

variable "nats_url" {
  type = string
}

variable "nats_stream" {
  type    = string
  default = "EMPORIUM"
}

variable "nats_subject_prefix" {
  type    = string
  default = ""
}

variable "cluster_port" {
  type        = number
  default     = 7100
  description = "Static: peers and seeds dial it"
}

variable "log" {
  type    = string
  default = "info"
}

variable "cpu" {
  type    = number
  default = 1000
}

variable "memory" {
  type    = number
  default = 1024
}

locals {
  # The Nomad variable holding the secrets (readable by this job's tasks by default).
  secrets_path = "nomad/jobs/emporium"
}

job "emporium" {
  type        = "service"
  datacenters = var.datacenters

  # Rolling deploys: one node at a time, each counted healthy only once its /readyz check
  # passes (it is Up in the cluster and serves), a failed deploy reverted.
  update {
    max_parallel      = 1
    health_check      = "checks"
    min_healthy_time  = "10s"
    healthy_deadline  = "5s"
    progress_deadline = "5m"
    auto_revert       = true
  }

  group "node" {
    count = var.node_count

    scaling {
      enabled = true
      min     = var.scaling_min
      max     = var.scaling_max
      # The policy itself is deploy/nomad/autoscaler/emporium-policy.hcl.
    }

    network {
      port "http" {}
      port "cluster" {
        static = var.cluster_port
      }
    }

    # Nomad deregisters the services, waits this long, then sends kill_signal: load
    # balancers that follow the catalog stop sending first.
    shutdown_delay = "2s"

    service {
      name     = "emporium-http"
      provider = "nomad"
      port     = "http"
      tags     = ["http"]

      check {
        name     = "ready"
        type     = "http"
        path     = "/readyz"
        interval = "2s"
        timeout  = "1s"
      }

      check {
        name     = "alive"
        type     = "http"
        path     = "/healthz"
        interval = "10s"
        timeout  = "2s"
      }
    }

    # Registered for the seeds template of the nodes that start later.
    service {
      name     = "emporium-cluster"
      provider = "nomad"
      port     = "cluster"

      check {
        name     = "cluster-port"
        type     = "tcp"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "emporium" {
      driver = "exec"

      config {
        command = var.emporium_bin
        # As a flag rather than in env, so that `ps` shows which node a process is. Unique
        # per allocation: a replacement may start while the allocation it replaces still
        # drains, and of two processes with one node id the older is expelled.
        args = ["--node-id", "emporium-${NOMAD_ALLOC_ID}"]
      }

      env {
        EMPORIUM_HTTP_ADDR           = "${NOMAD_ADDR_http}"
        EMPORIUM_CLUSTER_ADDR        = "${NOMAD_ADDR_cluster}"
        EMPORIUM_DATA_DIR            = "${NOMAD_ALLOC_DIR}/data"
        EMPORIUM_STORE               = var.store
        EMPORIUM_EVENTS              = var.nats_url
        EMPORIUM_NATS_STREAM         = var.nats_stream
        EMPORIUM_NATS_SUBJECT_PREFIX = var.nats_subject_prefix
        EMPORIUM_REQUEST_TIMEOUT     = "10s"
        EMPORIUM_DEMO                = "false"
        EMPORIUM_LOG                 = var.log
        NO_COLOR                     = "1"
      }

      # Secrets from the Nomad variable; seeds from the cluster service of the nodes already
      # running (this one left out). Rendered once before the task starts: a node needs
      # seeds only to join (the member table in the store is the source of truth after
      # that), so a change in the list must not restart it (change_mode noop).
      template {
        destination = "secrets/emporium.env"
        env         = true
        change_mode = "noop"
        data        = <<-EOT
          {{- with nomadVar "${local.secrets_path}" }}
          EMPORIUM_CLUSTER_SECRET={{ .cluster_secret }}
          EMPORIUM_JWT_SECRET={{ .jwt_secret }}
          EMPORIUM_ADMIN_EMAIL={{ .admin_email }}
          EMPORIUM_ADMIN_PASSWORD={{ .admin_password }}
          {{- end }}
          EMPORIUM_SEEDS={{ range nomadService "emporium-cluster" }}{{ if ne (printf "%s:%d" .Address .Port) (env "NOMAD_ADDR_cluster") }}{{ .Address }}:{{ .Port }},{{ end }}{{ end }}
        EOT
      }

      # SIGTERM: /readyz turns 503, the node hands its shards over (about 1 s, at most
      # 20 s), finishes in-flight requests (at most EMPORIUM_REQUEST_TIMEOUT) and actor
      # turns (at most 10 s), and exits 0: 40 s at worst. The Nomad client's
      # max_kill_timeout (30 s by default) must be raised to at least this.
      kill_signal  = "SIGTERM"
      kill_timeout = "45s"

      resources {
        cpu    = var.cpu
        memory = var.memory
      }
    }
  }
}
