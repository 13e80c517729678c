//! The embedded adapter of the StateStore port (being written).
