//! Black-box tests: real `emporium` processes, driven over HTTP like a user would.
//! One test binary (one link) for every scenario.

mod cluster_kit;
mod event_kit;
mod stores;
mod support;

mod cart_api;
mod catalog;
mod checkout;
mod cluster;
mod config;
mod console;
mod durability;
mod events;
mod nomad_drill;
mod operations;
mod outcomes;
mod passivation;
mod redis;
mod seeded_faults;
mod store_faults;
mod traces;
mod users;
