# Redis for the edge's shared state (EMPORIUM_REDIS_URL=redis://…:6379): rate limits, login
# throttling, token revocations, the catalog read cache. Optional: without it every node
# keeps these in process. Nothing in it must survive a restart (docs/api/redis.md).

variable "datacenters" {
  type    = list(string)
  default = ["dc1"]
}

variable "image" {
  type    = string
  default = "redis:7"
}

job "redis" {
  type        = "service"
  datacenters = var.datacenters

  group "redis" {
    count = 1

    network {
      port "redis" {
        static = 6379
      }
    }

    service {
      name     = "redis"
      provider = "nomad"
      port     = "redis"

      check {
        type     = "tcp"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "redis" {
      driver = "docker"

      config {
        image = var.image
        ports = ["redis"]
        args  = ["--save", "", "--appendonly", "no", "--maxmemory", "256mb", "--maxmemory-policy", "allkeys-lru"]
      }

      resources {
        cpu    = 500
        memory = 384
      }
    }
  }
}
