# ScyllaDB for the node job's store (scylla://…/emporium), one member per client host.
# For production, a ScyllaDB cluster run outside Nomad (or Scylla Cloud) is simpler to
# operate; this job is the documented in-Nomad setup. Data lives in a host volume
# "scylla" that each client declares (client { host_volume "scylla" { path = … } }).

variable "datacenters" {
  type    = list(string)
  default = ["dc1"]
}

variable "count" {
  type    = number
  default = 3
}

variable "image" {
  type    = string
  default = "scylladb/scylla:6.2"
}

job "scylla" {
  type        = "service"
  datacenters = var.datacenters

  update {
    max_parallel     = 1
    health_check     = "checks"
    min_healthy_time = "30s"
    healthy_deadline = "10m"
    auto_revert      = false
  }

  group "scylla" {
    count = var.count

    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    network {
      port "cql" {
        static = 9042
      }
      port "internode" {
        static = 7000
      }
    }

    volume "data" {
      type      = "host"
      source    = "scylla"
      read_only = false
    }

    service {
      name     = "scylla"
      provider = "nomad"
      port     = "cql"

      check {
        type     = "tcp"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "scylla" {
      driver = "docker"

      config {
        image        = var.image
        network_mode = "host"
        args = [
          "--seeds", "$${SCYLLA_SEEDS}",
          "--listen-address", "${NOMAD_IP_cql}",
          "--smp", "2",
          "--memory", "3G",
          "--developer-mode", "0",
        ]
      }

      # The first registered member seeds the others (itself when alone).
      template {
        destination = "local/seeds.env"
        env         = true
        change_mode = "noop"
        data        = <<-EOT
          SCYLLA_SEEDS={{ with nomadService "scylla" }}{{ (index . 0).Address }}{{ else }}{{ env "NOMAD_IP_cql" }}{{ end }}
        EOT
      }

      volume_mount {
        volume      = "data"
        destination = "/var/lib/scylla"
      }

      kill_timeout = "2m"

      resources {
        cpu    = 4000
        memory = 4096
      }
    }
  }
}
