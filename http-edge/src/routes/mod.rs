//! One module per resource; each handler parses its input into domain values, asks an
//! actor, and maps the reply to JSON.

pub mod carts;
pub mod health;
pub mod products;
