//! Every actor kind's commands and replies cross the cluster wire as JSON: they encode,
//! decode to the same value, and decoding re-checks validated values, so a forwarded payload
//! can never build an invalid one.

use std::collections::BTreeMap;
use std::fmt::Debug;

use emporium_actors::cart::{
    CartActor, CartCaller, CartCommand, CartLine, CartRejection, CartView,
};
use emporium_actors::catalog::{
    Product, ProductActor, ProductCommand, ProductDraft, VersionedProduct,
};
use emporium_actors::checkout::{
    CheckoutActor, CheckoutCommand, CheckoutFailure, CheckoutOutcome, CheckoutRejection,
    CheckoutReply, CheckoutRequest, PaymentToken,
};
use emporium_actors::inventory::{
    Allocation, InventoryActor, LowStockAlert, ReservationReceipt, ReservationStatus, StockCommand,
    StockRejection, StockReply, StockView, WarehouseId, WarehouseStock,
};
use emporium_actors::order::{
    NewOrder, OrderActor, OrderCommand, OrderRejection, OrderReply, OrderStatus, OrderView,
    UserOrdersActor, UserOrdersCommand,
};
use emporium_actors::payment::{
    Authorization, PaymentActor, PaymentCommand, PaymentError, PaymentOperation, PaymentRecord,
    PaymentReply, PaymentStatus, TestCard,
};
use emporium_actors::shipping::{Country, ShippingAddress};
use emporium_actors::user::{
    EmailIndexActor, EmailIndexCommand, EmailIndexReply, GuestMerge, MergeReport, NewAccount,
    OpenedCart, PasswordHash, UserActor, UserCommand, UserReply,
};
use emporium_actors::{CartId, Currency, Email, InvalidValue, Quantity, Role, Sku, UserName};
use emporium_runtime::VirtualActor;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The bounds the runtime puts on what it forwards to another node.
fn wire_encodable<A>()
where
    A: VirtualActor,
    A::Command: Serialize + DeserializeOwned + Clone + Send + 'static,
    A::Reply: Serialize + DeserializeOwned + Send + 'static,
{
}

#[test]
fn every_registered_kind_is_wire_encodable() {
    wire_encodable::<CartActor>();
    wire_encodable::<ProductActor>();
    wire_encodable::<UserActor>();
    wire_encodable::<EmailIndexActor>();
    wire_encodable::<InventoryActor>();
    wire_encodable::<PaymentActor>();
    wire_encodable::<OrderActor>();
    wire_encodable::<UserOrdersActor>();
    wire_encodable::<CheckoutActor>();
}

/// Encode to bytes, decode, and check the value and its encoding are unchanged.
fn round_trip<T>(value: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    decoded(value);
}

/// [`round_trip`], answering the decoded value.
fn decoded<T>(value: &T) -> T
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let bytes = serde_json::to_vec(value).expect("encodes");
    let back: T = serde_json::from_slice(&bytes).unwrap_or_else(|error| {
        panic!(
            "{} does not decode: {error}",
            String::from_utf8_lossy(&bytes)
        )
    });
    assert_eq!(&back, value);
    assert_eq!(serde_json::to_vec(&back).expect("re-encodes"), bytes);
    back
}

/// Decode `value` with the field at `path` replaced by `bad`; the error text.
fn decode_with<T: DeserializeOwned + Debug>(
    value: &impl Serialize,
    path: &[&str],
    bad: Value,
) -> String {
    let mut json = serde_json::to_value(value).expect("encodes");
    let mut slot = &mut json;
    for key in path {
        slot = slot
            .get_mut(*key)
            .unwrap_or_else(|| panic!("no {key:?} in the encoding"));
    }
    *slot = bad.clone();
    match serde_json::from_value::<T>(json) {
        Ok(decoded) => panic!("{path:?} = {bad} decoded as {decoded:?}"),
        Err(error) => error.to_string(),
    }
}

fn sku(text: &str) -> Sku {
    Sku::parse(text).unwrap()
}

fn usd() -> Currency {
    Currency::parse("USD").unwrap()
}

fn line(text: &str, quantity: u32) -> CartLine {
    CartLine {
        sku: sku(text),
        quantity,
        unit_price_cents: 1_999,
    }
}

fn cart_view() -> CartView {
    CartView {
        id: "cart-1".to_owned(),
        owner: Some("user-1".to_owned()),
        items: vec![line("SKU-1", 2), line("SKU-2", 1)],
        subtotal_cents: 5_997,
        currency: usd(),
    }
}

fn address() -> ShippingAddress {
    ShippingAddress::parse(
        Some("Ada Lovelace"),
        Some("1 Analytical Way"),
        Some("London"),
        Some("N1 9GU"),
        Some("GB"),
    )
    .unwrap()
}

fn password_hash() -> PasswordHash {
    serde_json::from_value(json!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA")).unwrap()
}

fn user() -> emporium_actors::User {
    emporium_actors::User {
        id: "user-1".to_owned(),
        email: Email::parse("ada@example.com").unwrap(),
        name: UserName::parse("Ada").unwrap(),
        roles: vec![Role::Customer, Role::Admin],
        cart_id: Some(CartId::parse("cart-1").unwrap()),
    }
}

/// `NewAccount` is built by `Users` only; from the outside it can only be decoded.
fn new_account() -> NewAccount {
    serde_json::from_value(json!({
        "user_id": "user-1",
        "email": "ada@example.com",
        "name": "Ada",
        "password_hash": password_hash(),
        "roles": ["customer"],
    }))
    .unwrap()
}

fn order_view() -> OrderView {
    OrderView {
        id: "order-1".to_owned(),
        user_id: "user-1".to_owned(),
        status: OrderStatus::Paid,
        items: vec![line("SKU-1", 2)],
        subtotal_cents: 3_998,
        shipping_cents: 500,
        total_cents: 4_498,
        currency: usd(),
        shipping_address: address(),
        payment_reference: "pay_c-1".to_owned(),
        checkout_id: "c-1".to_owned(),
        history: vec![(OrderStatus::Placed, 1_000), (OrderStatus::Paid, 2_000)],
    }
}

fn warehouse(text: &str) -> WarehouseId {
    WarehouseId::parse(text).unwrap()
}

#[test]
fn cart_commands_and_replies_round_trip() {
    for command in [
        CartCommand::Create {
            owner: Some("user-1".to_owned()),
        },
        CartCommand::Get,
        CartCommand::AddItem {
            sku: sku("SKU-1"),
            quantity: Quantity::new(3).unwrap(),
        },
        CartCommand::SetQuantity {
            sku: sku("SKU-1"),
            quantity: 0,
        },
        CartCommand::BeginCheckout {
            user: "user-1".to_owned(),
            checkout_id: "c-1".to_owned(),
        },
        CartCommand::MergeFrom {
            lines: vec![line("SKU-3", 4)],
            currency: Currency::parse("EUR").unwrap(),
        },
        CartCommand::Get.as_caller(CartCaller::anonymous()),
        CartCommand::RemoveItem { sku: sku("SKU-2") }.as_caller(CartCaller::account("u-1", true)),
    ] {
        round_trip(&command);
    }
    let replies: [<CartActor as VirtualActor>::Reply; 4] = [
        Ok(cart_view()),
        Err(CartRejection::CurrencyMismatch {
            product: sku("SKU-9"),
            product_currency: Currency::parse("EUR").unwrap(),
            cart_currency: usd(),
        }),
        Err(CartRejection::TooManyLines { max: 50 }),
        Err(CartRejection::SignInRequired),
    ];
    for reply in &replies {
        round_trip(reply);
    }
}

#[test]
fn product_commands_and_replies_round_trip() {
    let draft = ProductDraft {
        name: "Mug".to_owned(),
        description: "Holds coffee".to_owned(),
        price_cents: 1_250,
        currency: usd(),
        category: "kitchen".to_owned(),
        attributes: BTreeMap::from([("colour".to_owned(), "blue".to_owned())]),
    };
    round_trip(&ProductCommand::Get);
    round_trip(&ProductCommand::Upsert(draft.clone()));
    let product = Product {
        sku: sku("MUG-1"),
        name: draft.name,
        description: draft.description,
        price_cents: draft.price_cents,
        currency: draft.currency,
        category: draft.category,
        attributes: draft.attributes,
    };
    let replies: [<ProductActor as VirtualActor>::Reply; 3] = [
        Ok(Some(VersionedProduct {
            product,
            version: 7,
        })),
        Ok(None),
        Err(InvalidValue {
            field: "price_cents",
            expected: "a whole number of cents from 1 to 100000000".to_owned(),
        }),
    ];
    for reply in &replies {
        round_trip(reply);
    }
}

#[test]
fn invalid_value_field_names_stay_static_and_unknown_ones_survive() {
    let known = decoded(&InvalidValue {
        field: "sku",
        expected: "a token".to_owned(),
    });
    assert_eq!(known.field, "sku");
    // A name this build does not know (a peer running newer code) keeps its text.
    let unknown = decoded(&InvalidValue {
        field: "gift_wrap.colour",
        expected: "a colour".to_owned(),
    });
    assert_eq!(unknown.field, "gift_wrap.colour");
    assert_eq!(
        emporium_actors::values::field_name("gift_wrap.colour").as_ptr(),
        unknown.field.as_ptr(),
        "interned once"
    );
}

#[test]
fn user_commands_and_replies_round_trip() {
    for command in [
        UserCommand::Create(new_account()),
        UserCommand::Get,
        UserCommand::Credentials,
        UserCommand::MakeAdmin {
            password_hash: password_hash(),
        },
        UserCommand::OpenCart {
            guest: Some(CartId::parse("guest-1").unwrap()),
        },
        UserCommand::OpenCart { guest: None },
        UserCommand::RecordLogin,
    ] {
        round_trip(&command);
    }
    for reply in [
        UserReply::Created {
            user: user(),
            created: true,
        },
        UserReply::Found(None),
        UserReply::Credentials(Some((user(), password_hash()))),
        UserReply::Cart(Some(OpenedCart {
            cart: cart_view(),
            created: false,
            guest: Some(GuestMerge::Merged(MergeReport {
                merged: vec![sku("SKU-1")],
                left_out: vec![sku("SKU-2")],
            })),
        })),
        UserReply::Cart(Some(OpenedCart {
            cart: cart_view(),
            created: true,
            guest: Some(GuestMerge::Owned),
        })),
    ] {
        round_trip(&reply);
    }
}

#[test]
fn email_index_commands_and_replies_round_trip() {
    round_trip(&EmailIndexCommand::Register(new_account()));
    round_trip(&EmailIndexCommand::Lookup);
    for reply in [
        EmailIndexReply::Registered(user()),
        EmailIndexReply::Taken {
            user_id: "user-2".to_owned(),
        },
        EmailIndexReply::Owner(Some("user-1".to_owned())),
        EmailIndexReply::Owner(None),
    ] {
        round_trip(&reply);
    }
}

#[test]
fn inventory_commands_and_replies_round_trip() {
    for command in [
        StockCommand::Get,
        StockCommand::SetStock {
            warehouse: warehouse("eu-1"),
            on_hand: 40,
            low_stock_threshold: Some(3),
        },
        StockCommand::Reserve {
            reservation: "c-1".to_owned(),
            units: 2,
        },
        StockCommand::Commit {
            reservation: "c-1".to_owned(),
        },
        StockCommand::Release {
            reservation: "c-1".to_owned(),
        },
        StockCommand::Settle {
            reservation: "c-1".to_owned(),
        },
    ] {
        round_trip(&command);
    }
    let view = StockView {
        sku: "SKU-1".to_owned(),
        on_hand: 40,
        reserved: 2,
        available: 38,
        warehouses: vec![(
            warehouse("eu-1"),
            WarehouseStock {
                on_hand: 40,
                reserved: 2,
            },
        )],
        low_stock_threshold: 3,
        low_stock: false,
        alerts: vec![LowStockAlert {
            at_ms: 1_000,
            available: 1,
        }],
    };
    let receipt = ReservationReceipt {
        reservation: "c-1".to_owned(),
        units: 2,
        allocations: vec![Allocation {
            warehouse: warehouse("eu-1"),
            units: 2,
        }],
        status: ReservationStatus::Held {
            expires_at_ms: 900_000,
        },
    };
    for reply in [
        StockReply::View(Some(view.clone())),
        StockReply::View(None),
        StockReply::Set(Ok(view)),
        StockReply::Reservation(Ok(receipt)),
        StockReply::Reservation(Err(StockRejection::Closed {
            sku: "SKU-1".to_owned(),
            reservation: "c-1".to_owned(),
            status: ReservationStatus::Expired,
        })),
        StockReply::Set(Err(StockRejection::BelowReserved {
            sku: "SKU-1".to_owned(),
            warehouse: warehouse("eu-1"),
            reserved: 2,
        })),
    ] {
        round_trip(&reply);
    }
}

#[test]
fn payment_commands_and_replies_round_trip() {
    for command in [
        PaymentCommand::Authorize {
            amount_cents: 4_498,
            currency: usd(),
            card: TestCard::LostAnswer,
        },
        PaymentCommand::Capture {
            amount_cents: 4_498,
            idempotency_key: "c-1:capture".to_owned(),
        },
        PaymentCommand::Void,
        PaymentCommand::Refund {
            amount_cents: 100,
            idempotency_key: "c-1:refund".to_owned(),
        },
        PaymentCommand::Get,
    ] {
        round_trip(&command);
    }
    let record = PaymentRecord {
        reference: "pay_c-1".to_owned(),
        status: PaymentStatus::Captured,
        amount_cents: 4_498,
        currency: usd(),
        captured_cents: 4_498,
        refunded_cents: 0,
        operations: vec![PaymentOperation {
            kind: "capture".to_owned(),
            idempotency_key: "c-1:capture".to_owned(),
            amount_cents: 4_498,
            at_ms: 2_000,
        }],
    };
    for reply in [
        PaymentReply::Authorization(Authorization::Approved {
            reference: "pay_c-1".to_owned(),
        }),
        PaymentReply::Authorization(Authorization::Declined {
            code: "card_declined".to_owned(),
            message: "declined".to_owned(),
        }),
        PaymentReply::Record(Ok(record.clone())),
        PaymentReply::Record(Err(PaymentError::Refused("voided".to_owned()))),
        PaymentReply::Found(Some(record)),
    ] {
        round_trip(&reply);
    }
}

#[test]
fn order_commands_and_replies_round_trip() {
    let new_order = NewOrder {
        user_id: "user-1".to_owned(),
        checkout_id: "c-1".to_owned(),
        items: vec![line("SKU-1", 2)],
        subtotal_cents: 3_998,
        shipping_cents: 500,
        currency: usd(),
        shipping_address: address(),
        payment_reference: "pay_c-1".to_owned(),
    };
    for command in [
        OrderCommand::Place(Box::new(new_order)),
        OrderCommand::Get,
        OrderCommand::MarkPaid,
        OrderCommand::Cancel {
            reason: "changed my mind".to_owned(),
        },
    ] {
        round_trip(&command);
    }
    let replies: [OrderReply; 3] = [
        Ok(order_view()),
        Err(OrderRejection::InvalidTransition {
            from: OrderStatus::Shipped,
            to: OrderStatus::Cancelled,
        }),
        Err(OrderRejection::AlreadyExists("order-1".to_owned())),
    ];
    for reply in &replies {
        round_trip(reply);
    }
}

#[test]
fn user_orders_commands_and_replies_round_trip() {
    round_trip(&UserOrdersCommand::Add {
        order_id: "order-1".to_owned(),
    });
    round_trip(&UserOrdersCommand::List);
    let reply: <UserOrdersActor as VirtualActor>::Reply =
        vec!["order-1".to_owned(), "order-2".to_owned()];
    round_trip(&reply);
}

fn checkout_request() -> CheckoutRequest {
    CheckoutRequest {
        user_id: "user-1".to_owned(),
        cart_id: CartId::parse("cart-1").unwrap(),
        shipping_address: address(),
        token: PaymentToken::parse(Some("tok_visa")).unwrap(),
    }
}

#[test]
fn checkout_commands_and_replies_round_trip() {
    let request = checkout_request();
    let CheckoutCommand::Run(back) = decoded(&CheckoutCommand::Run(Box::new(request.clone())));
    assert_eq!(
        back.fingerprint(),
        request.fingerprint(),
        "a forwarded checkout is the same request for idempotency"
    );
    let replies: [CheckoutReply; 4] = [
        Ok(CheckoutOutcome::Placed {
            order: Box::new(order_view()),
        }),
        Ok(CheckoutOutcome::Failed {
            failure: CheckoutFailure::PaymentDeclined {
                code: "card_declined".to_owned(),
                message: "declined".to_owned(),
            },
        }),
        Ok(CheckoutOutcome::Failed {
            failure: CheckoutFailure::InsufficientStock {
                skus: vec!["SKU-1".to_owned()],
            },
        }),
        Err(CheckoutRejection::KeyReused),
    ];
    for reply in &replies {
        round_trip(reply);
    }
}

#[test]
fn the_payment_token_stays_hidden_in_debug() {
    let command = CheckoutCommand::Run(Box::new(checkout_request()));
    assert!(!format!("{command:?}").contains("tok_visa"));
}

#[test]
fn decoding_rechecks_quantities() {
    let command = CartCommand::AddItem {
        sku: sku("SKU-1"),
        quantity: Quantity::new(1).unwrap(),
    };
    for bad in [
        json!(0),
        json!(-1),
        json!(100),
        json!(u64::MAX),
        json!(1.5),
        json!("2"),
    ] {
        decode_with::<CartCommand>(&command, &["AddItem", "quantity"], bad);
    }
    let error = decode_with::<CartCommand>(&command, &["AddItem", "quantity"], json!(0));
    assert!(error.contains("quantity"), "{error}");
    assert_eq!(
        serde_json::from_value::<Quantity>(json!(99)).unwrap(),
        Quantity::new(99).unwrap()
    );
}

#[test]
fn decoding_rechecks_strings() {
    let add = CartCommand::AddItem {
        sku: sku("SKU-1"),
        quantity: Quantity::new(1).unwrap(),
    };
    for bad in [
        json!(""),
        json!("has space"),
        json!("x".repeat(65)),
        json!(7),
    ] {
        decode_with::<CartCommand>(&add, &["AddItem", "sku"], bad);
    }
    let merge = CartCommand::MergeFrom {
        lines: vec![line("SKU-1", 1)],
        currency: usd(),
    };
    for bad in [json!("usd"), json!("EURO"), json!("")] {
        let error = decode_with::<CartCommand>(&merge, &["MergeFrom", "currency"], bad);
        assert!(error.contains("currency"), "{error}");
    }
    let open = UserCommand::OpenCart {
        guest: Some(CartId::parse("guest-1").unwrap()),
    };
    decode_with::<UserCommand>(&open, &["OpenCart", "guest"], json!("a/b"));
    let set = StockCommand::SetStock {
        warehouse: warehouse("eu-1"),
        on_hand: 1,
        low_stock_threshold: None,
    };
    decode_with::<StockCommand>(&set, &["SetStock", "warehouse"], json!(""));
    let run = CheckoutCommand::Run(Box::new(checkout_request()));
    let error =
        decode_with::<CheckoutCommand>(&run, &["Run", "shipping_address", "country"], json!("XX"));
    assert!(error.contains("country"), "{error}");
    decode_with::<CheckoutCommand>(&run, &["Run", "token"], json!(""));
    decode_with::<CheckoutCommand>(&run, &["Run", "token"], json!("tok visa"));
    decode_with::<CheckoutCommand>(&run, &["Run", "cart_id"], json!(""));
    let create = UserCommand::Create(new_account());
    decode_with::<UserCommand>(&create, &["Create", "email"], json!("not-an-address"));
    decode_with::<UserCommand>(&create, &["Create", "name"], json!("   "));
}

#[test]
fn decoded_values_are_the_parsed_ones() {
    // Decoding goes through the same parser as the edge: e-mails are normalized.
    let email: Email = serde_json::from_value(json!(" Ada@Example.COM ")).unwrap();
    assert_eq!(email, Email::parse("ada@example.com").unwrap());
    let country: Country = serde_json::from_value(json!("DE")).unwrap();
    assert_eq!(country.as_str(), "DE");
    // The encodings of the values are plain strings and numbers, as before.
    assert_eq!(serde_json::to_value(sku("SKU-1")).unwrap(), json!("SKU-1"));
    assert_eq!(serde_json::to_value(usd()).unwrap(), json!("USD"));
    assert_eq!(
        serde_json::to_value(Quantity::new(7).unwrap()).unwrap(),
        json!(7)
    );
    assert_eq!(
        serde_json::to_value(PaymentToken::parse(Some("tok_visa")).unwrap()).unwrap(),
        json!("tok_visa")
    );
}
