//! The scylla adapter of the StateStore port (being written).
