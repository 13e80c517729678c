//! Emporium's domain: the e-commerce capabilities as virtual actors.
//!
//! **Architecture invariant**: this crate holds no HTTP and no storage types. It speaks to the
//! world only through the runtime (`emporium-runtime`) and through ports it defines itself
//! (the search index). Replies carry domain rejections as values; `RuntimeError` means the
//! runtime could not get an answer.
//!
//! Start with [`register`], which adds every actor kind to a runtime builder.

pub mod cart;
pub mod catalog;
pub mod user;
pub mod values;

use emporium_runtime::RuntimeBuilder;

pub use cart::{CartActor, CartCommand, CartLine, CartRejection, CartView};
pub use catalog::{Catalog, CatalogError, Product, ProductActor, ProductDraft};
pub use user::{Email, Password, Role, User, UserActor, UserError, UserName, Users};
pub use values::{CartId, Currency, InvalidValue, Quantity, Sku};

/// Register every domain actor kind with the runtime.
pub fn register(builder: RuntimeBuilder) -> RuntimeBuilder {
    builder
        .register(CartActor)
        .register(ProductActor)
        .register(user::UserActor)
        .register(user::EmailIndexActor)
}
