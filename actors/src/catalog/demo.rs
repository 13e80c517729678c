//! The demo catalog seeded on an empty store when demo mode is on.

use std::collections::BTreeMap;

use super::ProductDraft;
use crate::values::{Currency, Sku};

/// `(sku, name, description, price_cents, category)`.
const DEMO: &[(&str, &str, &str, i64, &str)] = &[
    (
        "SKU-TEE-BLK",
        "Black T-shirt",
        "Organic cotton crew-neck tee in black.",
        1999,
        "apparel",
    ),
    (
        "SKU-TEE-WHT",
        "White T-shirt",
        "Organic cotton crew-neck tee in white.",
        1999,
        "apparel",
    ),
    (
        "SKU-HOODIE",
        "Grey Hoodie",
        "Heavyweight fleece hoodie with a kangaroo pocket.",
        4999,
        "apparel",
    ),
    (
        "SKU-CAP",
        "Baseball Cap",
        "Six-panel cotton cap with an adjustable strap.",
        1499,
        "apparel",
    ),
    (
        "SKU-MUG",
        "Ceramic Mug",
        "A 350 ml stoneware mug, dishwasher safe.",
        1299,
        "kitchen",
    ),
    (
        "SKU-KETTLE",
        "Electric Kettle",
        "1.7 litre stainless steel kettle with auto shut-off.",
        3999,
        "kitchen",
    ),
    (
        "SKU-PAN",
        "Cast Iron Pan",
        "A 26 cm pre-seasoned cast iron skillet.",
        3499,
        "kitchen",
    ),
    (
        "SKU-BOOK-RUST",
        "The Rust Book (print)",
        "A printed edition of the Rust programming language book.",
        3999,
        "books",
    ),
    (
        "SKU-BOOK-DDIA",
        "Designing Data-Intensive Applications",
        "Reliable, scalable and maintainable systems.",
        4499,
        "books",
    ),
    (
        "SKU-NOTEBOOK",
        "Dotted Notebook",
        "A5 dotted notebook, 160 pages of 100 gsm paper.",
        999,
        "stationery",
    ),
    (
        "SKU-PEN",
        "Fountain Pen",
        "Steel-nib fountain pen with a converter.",
        2499,
        "stationery",
    ),
    (
        "SKU-HEADPHONES",
        "Wireless Headphones",
        "Over-ear noise-cancelling headphones, 30 h battery.",
        19999,
        "electronics",
    ),
    (
        "SKU-KEYBOARD",
        "Mechanical Keyboard",
        "Tenkeyless keyboard with tactile switches.",
        8999,
        "electronics",
    ),
    (
        "SKU-CABLE",
        "USB-C Cable",
        "Braided 2 m USB-C to USB-C cable, 100 W.",
        1299,
        "electronics",
    ),
];

pub(super) fn products() -> Vec<(Sku, ProductDraft)> {
    DEMO.iter()
        .filter_map(|(sku, name, description, price_cents, category)| {
            let sku = Sku::parse(sku).ok()?;
            Some((
                sku,
                ProductDraft {
                    name: (*name).to_owned(),
                    description: (*description).to_owned(),
                    price_cents: *price_cents,
                    currency: Currency::default(),
                    category: (*category).to_owned(),
                    attributes: BTreeMap::new(),
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_demo_product_is_valid() {
        let products = super::products();
        assert_eq!(products.len(), super::DEMO.len());
        for (_, draft) in products {
            assert_eq!(draft.validate(), Ok(()));
        }
    }
}
