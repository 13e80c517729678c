# NATS with JetStream for the node job's events (EMPORIUM_EVENTS=nats://…:4222). One server
# here; for EMPORIUM_NATS_REPLICAS > 1 run a NATS cluster of 3 (routes on port 6222).
# JetStream's files live in a host volume "nats" that the client declares.

variable "datacenters" {
  type    = list(string)
  default = ["dc1"]
}

variable "image" {
  type    = string
  default = "nats:2.10"
}

job "nats" {
  type        = "service"
  datacenters = var.datacenters

  group "nats" {
    count = 1

    network {
      port "client" {
        static = 4222
      }
      port "monitor" {
        static = 8222
      }
    }

    volume "data" {
      type      = "host"
      source    = "nats"
      read_only = false
    }

    service {
      name     = "nats"
      provider = "nomad"
      port     = "client"

      check {
        name     = "healthz"
        type     = "http"
        port     = "monitor"
        path     = "/healthz?js-enabled-only=true"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "nats" {
      driver = "docker"

      config {
        image = var.image
        ports = ["client", "monitor"]
        args  = ["--jetstream", "--store_dir", "/data", "--http_port", "8222"]
      }

      volume_mount {
        volume      = "data"
        destination = "/data"
      }

      kill_timeout = "30s"

      resources {
        cpu    = 500
        memory = 512
      }
    }
  }
}
