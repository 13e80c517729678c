//! The login merge rules: what happens to a guest cart's lines when its shopper logs in.
//!
//! - A SKU already in the user's cart: the quantities add up, capped at [`Quantity::MAX`];
//!   the user's line keeps its unit price.
//! - A new SKU: appended with the guest line's unit price (the price when the guest added
//!   it), while the cart holds fewer than [`MAX_LINES`] lines.
//! - A cart in another currency: an empty user cart takes the guest cart's currency;
//!   otherwise guest lines in another currency are not merged.
//!
//! Lines that could not be merged (no room, other currency) are reported, and the login
//! flow leaves them in the guest cart rather than dropping them.

use crate::cart::{CartLine, MAX_LINES};
use crate::values::{Currency, Quantity, Sku};

/// What a merge did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MergeReport {
    /// Guest SKUs now in the user's cart (added to a line, or as a new line).
    pub merged: Vec<Sku>,
    /// Guest SKUs left out: the cart was full or in another currency.
    pub left_out: Vec<Sku>,
}

impl MergeReport {
    pub fn changed(&self) -> bool {
        !self.merged.is_empty()
    }
}

/// Merge `incoming` (priced in `incoming_currency`) into `lines` (priced in `currency`).
pub fn merge_lines(
    lines: &mut Vec<CartLine>,
    currency: &mut Currency,
    incoming: &[CartLine],
    incoming_currency: &Currency,
) -> MergeReport {
    let mut report = MergeReport::default();
    if incoming.is_empty() {
        return report;
    }
    if lines.is_empty() {
        *currency = incoming_currency.clone();
    }
    let same_currency = currency == incoming_currency;
    for line in incoming {
        if !same_currency || line.quantity == 0 {
            report.left_out.push(line.sku.clone());
            continue;
        }
        if let Some(existing) = lines.iter_mut().find(|existing| existing.sku == line.sku) {
            existing.quantity = existing
                .quantity
                .saturating_add(line.quantity)
                .min(Quantity::MAX);
            report.merged.push(line.sku.clone());
        } else if lines.len() < MAX_LINES {
            lines.push(CartLine {
                sku: line.sku.clone(),
                quantity: line.quantity.min(Quantity::MAX),
                unit_price_cents: line.unit_price_cents,
            });
            report.merged.push(line.sku.clone());
        } else {
            report.left_out.push(line.sku.clone());
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, quantity: u32, unit_price_cents: i64) -> CartLine {
        CartLine {
            sku: Sku::parse(sku).unwrap(),
            quantity,
            unit_price_cents,
        }
    }

    fn usd() -> Currency {
        Currency::parse("USD").unwrap()
    }

    fn eur() -> Currency {
        Currency::parse("EUR").unwrap()
    }

    #[test]
    fn quantities_add_and_the_users_price_stays() {
        let mut lines = vec![line("MUG", 2, 1200)];
        let mut currency = usd();
        let report = merge_lines(
            &mut lines,
            &mut currency,
            &[line("MUG", 3, 999), line("TEE", 1, 2500)],
            &usd(),
        );
        assert_eq!(lines, vec![line("MUG", 5, 1200), line("TEE", 1, 2500)]);
        assert_eq!(report.merged.len(), 2);
        assert!(report.left_out.is_empty());
        assert!(report.changed());
    }

    #[test]
    fn quantities_are_capped_at_the_line_limit() {
        let mut lines = vec![line("MUG", 90, 1200)];
        let mut currency = usd();
        let report = merge_lines(
            &mut lines,
            &mut currency,
            &[line("MUG", 20, 1200), line("NEW", 500, 10)],
            &usd(),
        );
        assert_eq!(lines[0].quantity, Quantity::MAX);
        assert_eq!(
            lines[1].quantity,
            Quantity::MAX,
            "a bad incoming line is capped too"
        );
        assert_eq!(report.merged.len(), 2, "capped lines still count as merged");
    }

    #[test]
    fn new_lines_stop_at_max_lines_and_are_left_out() {
        let mut lines: Vec<CartLine> = (0..MAX_LINES - 1)
            .map(|i| line(&format!("U{i}"), 1, 100))
            .collect();
        let mut currency = usd();
        let incoming = [line("G1", 1, 100), line("G2", 1, 100), line("U0", 4, 100)];
        let report = merge_lines(&mut lines, &mut currency, &incoming, &usd());
        assert_eq!(lines.len(), MAX_LINES);
        assert_eq!(
            report.merged,
            vec![Sku::parse("G1").unwrap(), Sku::parse("U0").unwrap()],
            "an existing SKU still merges into a full cart"
        );
        assert_eq!(report.left_out, vec![Sku::parse("G2").unwrap()]);
        assert_eq!(lines[0].quantity, 5);
    }

    #[test]
    fn an_empty_cart_takes_the_guest_currency() {
        let mut lines = Vec::new();
        let mut currency = usd();
        let report = merge_lines(&mut lines, &mut currency, &[line("BOOK", 1, 900)], &eur());
        assert_eq!(currency, eur());
        assert_eq!(lines.len(), 1);
        assert!(report.left_out.is_empty());
    }

    #[test]
    fn other_currency_lines_are_left_out_of_a_non_empty_cart() {
        let mut lines = vec![line("MUG", 1, 1200)];
        let mut currency = usd();
        let report = merge_lines(
            &mut lines,
            &mut currency,
            &[line("BOOK", 1, 900), line("MUG", 1, 1100)],
            &eur(),
        );
        assert_eq!(lines, vec![line("MUG", 1, 1200)], "unchanged");
        assert_eq!(currency, usd());
        assert_eq!(report.left_out.len(), 2);
        assert!(!report.changed());
    }

    #[test]
    fn nothing_to_merge_changes_nothing() {
        let mut lines = Vec::new();
        let mut currency = usd();
        let report = merge_lines(&mut lines, &mut currency, &[], &eur());
        assert_eq!(
            currency,
            usd(),
            "an empty guest cart does not set the currency"
        );
        assert_eq!(report, MergeReport::default());
    }
}
