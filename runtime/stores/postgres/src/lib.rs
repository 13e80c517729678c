//! The postgres adapter of the StateStore port (being written).
