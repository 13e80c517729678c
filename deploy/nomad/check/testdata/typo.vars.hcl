# dev.vars.hcl with a misspelt name (nats_streem): no job declares it.
# One-machine development: the services of scripts/services.sh on 127.0.0.1.
emporium_bin        = "/opt/emporium/target/release/emporium"
node_count          = 1
scaling_min         = 1
scaling_max         = 3
store               = "postgres://postgres@127.0.0.1:5432/emporium_nomad"
nats_url            = "nats://127.0.0.1:4222"
nats_streem         = "EMPORIUM_NOMAD_DEV"
nats_subject_prefix = "nomad-dev"
log                 = "info,emporium=debug"
cpu                 = 500
memory              = 512
