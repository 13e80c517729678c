# Production: ScyllaDB and NATS as registered by scylla.nomad.hcl and nats.nomad.hcl (or
# your own clusters), three nodes at least, up to twelve.
emporium_bin = "/usr/local/bin/emporium"
datacenters  = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
node_count   = 3
scaling_min  = 3
scaling_max  = 12
store        = "scylla://scylla-1.service.internal:9042,scylla-2.service.internal:9042,scylla-3.service.internal:9042/emporium"
nats_url     = "nats://nats.service.internal:4222"
nats_stream  = "EMPORIUM"
cpu          = 2000
memory       = 2048
